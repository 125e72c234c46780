"""The STAC side of salibi fetch: the catalogs known by name (signing) and the guarded search."""
