"""Files in and out: images and their conversions, the Luan et al. dataset, provenance (metadata, git revision)."""
