from drag.model.backbone import Backbone, build_backbone
from drag.model.drag import DRAG

__all__ = ["Backbone", "DRAG", "build_backbone"]
