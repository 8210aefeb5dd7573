"""Semantic masks (section 3.3): gold masks, ADE20K labels, the segmenter, hard / soft masks, controlled mask errors."""
