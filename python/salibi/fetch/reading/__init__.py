"""Reading assets: windowed COG reads with retries and resume, and GDAL's /vsicurl/ bookkeeping."""
