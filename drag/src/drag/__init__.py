"""DRAG: Dynamic Region-Aware GCN for privacy-leaking image detection."""

CLASS_NAMES = ("public", "private")  # label 0 = public, 1 = private everywhere in this package
PRIVATE = 1
PUBLIC = 0
