"""Photorealism (sections 3.2, 3.5): the matting Laplacian, the post-processes, Luan et al.'s local affine smoothing."""
