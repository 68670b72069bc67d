"""vgtrain: a lean CosPlace trainer and evaluator reading vgdata manifests (pyarrow only)."""
