"""OpenCV drawings for the synthetic set: backgrounds, neutral scene parts, and privacy cues."""

from __future__ import annotations

import string

import cv2
import numpy as np

FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)


def _color(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, size=3))


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:  # vertical gradient
        top, bottom = np.array(_color(rng)), np.array(_color(rng))
        t = np.linspace(0, 1, size)[:, None, None]
        img = (top * (1 - t) + bottom * t).repeat(size, axis=1)
    elif kind == 1:  # blurred noise texture
        img = rng.integers(0, 256, size=(size // 8, size // 8, 3)).astype(np.float32)
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)
    elif kind == 2:  # stripes
        img = np.zeros((size, size, 3)) + _color(rng)
        step = int(rng.integers(6, 24))
        for y in range(0, size, step * 2):
            img[y : y + step] = _color(rng)
    else:  # flat with noise
        img = np.zeros((size, size, 3)) + _color(rng)
        img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _box(rng: np.random.Generator, size: int, lo: float, hi: float, aspect: float = 1.0):
    width = int(size * rng.uniform(lo, hi))
    height = max(8, int(width * aspect))
    height = min(height, size - 2)
    x0 = int(rng.integers(0, max(1, size - width)))
    y0 = int(rng.integers(0, max(1, size - height)))
    return x0, y0, width, height


def draw_scene_part(img: np.ndarray, rng: np.random.Generator) -> None:
    """Neutral content found in both classes: mountains, trees, houses, shapes, lines."""
    size = img.shape[0]
    kind = rng.integers(5)
    if kind == 0:  # mountain range
        base = int(size * rng.uniform(0.5, 0.9))
        pts = (
            [(0, base)]
            + [
                (int(x), int(base - rng.uniform(0.1, 0.5) * size))
                for x in np.linspace(0, size, int(rng.integers(3, 7)))
            ]
            + [(size, base), (size, size), (0, size)]
        )
        cv2.fillPoly(img, [np.array(pts, np.int32)], _color(rng, 40, 160))
    elif kind == 1:  # tree
        x0, y0, w, h = _box(rng, size, 0.15, 0.35, aspect=1.6)
        cv2.rectangle(
            img,
            (x0 + w // 2 - w // 10, y0 + h // 2),
            (x0 + w // 2 + w // 10, y0 + h),
            (30, 60, 100),
            -1,
        )
        cv2.circle(
            img,
            (x0 + w // 2, y0 + h // 3),
            max(4, w // 2),
            (40, int(rng.integers(100, 200)), 40),
            -1,
        )
    elif kind == 2:  # house
        x0, y0, w, h = _box(rng, size, 0.2, 0.4, aspect=0.8)
        cv2.rectangle(img, (x0, y0 + h // 3), (x0 + w, y0 + h), _color(rng, 60, 220), -1)
        roof = np.array([(x0, y0 + h // 3), (x0 + w // 2, y0), (x0 + w, y0 + h // 3)], np.int32)
        cv2.fillPoly(img, [roof], _color(rng, 60, 200))
    elif kind == 3:  # random polygons / circles
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = (int(v) for v in rng.integers(0, size, 2))
            if rng.random() < 0.5:
                cv2.circle(img, (cx, cy), int(rng.integers(4, size // 5)), _color(rng), -1)
            else:
                pts = rng.integers(0, size, size=(int(rng.integers(3, 6)), 2)).astype(np.int32)
                cv2.fillPoly(img, [pts], _color(rng))
    else:  # lines
        for _ in range(int(rng.integers(2, 6))):
            p1 = tuple(int(v) for v in rng.integers(0, size, 2))
            p2 = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, p1, p2, _color(rng), int(rng.integers(1, 4)))


def _text_lines(img, rng, x0, y0, w, h, color, lines: int) -> None:
    scale = max(0.25, h / lines / 30)
    for i in range(lines):
        y = y0 + int((i + 0.8) * h / lines)
        chars = "".join(
            rng.choice(list(string.ascii_uppercase + string.digits), int(rng.integers(4, 14)))
        )
        cv2.putText(
            img,
            chars,
            (x0 + 2, y),
            FONTS[int(rng.integers(len(FONTS)))],
            scale,
            color,
            1,
            cv2.LINE_AA,
        )
        # a bar under the glyphs keeps the text visible once resized small
        cv2.line(img, (x0 + 2, y + 1), (x0 + int(w * rng.uniform(0.4, 0.95)), y + 1), color, 1)


def draw_face(img: np.ndarray, rng: np.random.Generator, box=None) -> None:
    size = img.shape[0]
    x0, y0, w, h = box or _box(rng, size, 0.25, 0.5, aspect=1.25)
    cx, cy = x0 + w // 2, y0 + h // 2
    skin = (int(rng.integers(60, 140)), int(rng.integers(120, 190)), int(rng.integers(180, 250)))
    cv2.ellipse(
        img, (cx, cy + h // 2 + h // 4), (w // 2 + 2, h // 3), 0, 180, 360, _color(rng, 0, 200), -1
    )  # shoulders
    cv2.ellipse(
        img, (cx, cy - h // 2 + h // 5), (w // 2, h // 4), 0, 180, 360, _color(rng, 0, 90), -1
    )  # hair
    cv2.ellipse(img, (cx, cy), (w // 2 - 1, h // 2 - 1), 0, 0, 360, skin, -1)
    eye_dy, eye_dx = h // 8, w // 5
    for sign in (-1, 1):
        cv2.circle(img, (cx + sign * eye_dx, cy - eye_dy), max(1, w // 12), (255, 255, 255), -1)
        cv2.circle(img, (cx + sign * eye_dx, cy - eye_dy), max(1, w // 22), (20, 20, 20), -1)
    cv2.line(img, (cx, cy - eye_dy // 2), (cx, cy + h // 10), (60, 90, 150), max(1, w // 25))
    cv2.ellipse(
        img, (cx, cy + h // 5), (w // 5, h // 12), 0, 0, 180, (40, 40, 160), max(1, w // 20)
    )


def draw_id_card(img: np.ndarray, rng: np.random.Generator) -> None:
    size = img.shape[0]
    x0, y0, w, h = _box(rng, size, 0.45, 0.75, aspect=0.63)
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), _color(rng, 200, 256), -1)
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h // 6), _color(rng, 0, 160), -1)  # header bar
    photo = (x0 + w // 20, y0 + h // 4, w // 3, int(h * 0.65))
    cv2.rectangle(
        img, (photo[0], photo[1]), (photo[0] + photo[2], photo[1] + photo[3]), (200, 200, 200), -1
    )
    draw_face(img, rng, box=photo)
    _text_lines(
        img,
        rng,
        x0 + w // 3 + w // 10,
        y0 + h // 4,
        w // 2,
        int(h * 0.65),
        (20, 20, 20),
        int(rng.integers(3, 6)),
    )


def draw_document(img: np.ndarray, rng: np.random.Generator) -> None:
    size = img.shape[0]
    x0, y0, w, h = _box(rng, size, 0.4, 0.65, aspect=1.3)
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (245, 245, 245), -1)
    _text_lines(img, rng, x0 + 3, y0 + 3, w - 6, h - 6, (10, 10, 10), int(rng.integers(6, 11)))


def draw_screen(img: np.ndarray, rng: np.random.Generator) -> None:
    size = img.shape[0]
    x0, y0, w, h = _box(rng, size, 0.45, 0.75, aspect=0.65)
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (25, 25, 25), -1)  # bezel
    inner = (x0 + w // 14, y0 + h // 10, w - w // 7, h - h // 5)
    screen_color = _color(rng, 170, 256) if rng.random() < 0.5 else _color(rng, 0, 60)
    text_color = (10, 10, 10) if sum(screen_color) > 380 else (230, 255, 230)
    cv2.rectangle(img, inner[:2], (inner[0] + inner[2], inner[1] + inner[3]), screen_color, -1)
    _text_lines(
        img, rng, inner[0], inner[1], inner[2], inner[3], text_color, int(rng.integers(4, 8))
    )


PRIVACY_CUES = (draw_face, draw_id_card, draw_document, draw_screen)


def draw_image(rng: np.random.Generator, size: int, private: bool) -> np.ndarray:
    img = background(rng, size)
    for _ in range(int(rng.integers(1, 4))):
        draw_scene_part(img, rng)
    if private:
        for _ in range(1 if rng.random() < 0.7 else 2):
            PRIVACY_CUES[int(rng.integers(len(PRIVACY_CUES)))](img, rng)
    return img
