"""What salibi fetch fetches: areas (box, tiles, shards), assets by band metadata, the pairing and
greedy cover of scenes, and the plan of groups and files they make."""
