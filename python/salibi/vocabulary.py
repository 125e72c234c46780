"""The words salibi's parts share, defined once (and importable without torch).

The command line, the models, align, data, embed and eval all import these; nothing else
spells them out.
"""

from __future__ import annotations

#: Modality names in the one order used everywhere: the order the model fuses them
#: (SAR with low-res optical first, then the result with high-res optical).
MODALITIES: tuple[str, ...] = ("sar", "lores", "hires")
#: What each modality is, for help texts.
MODALITY_HELP: dict[str, str] = {
    "sar": "SAR (e.g. Sentinel-1 VV/VH; complex SLC becomes intensity |z|^2)",
    "lores": "Low-resolution optical (e.g. Sentinel-2 band files, Landsat; 5 m and coarser)",
    "hires": "High-resolution optical (e.g. NAIP, WorldView; finer than 5 m)",
}
#: Model sizes (their widths are in :mod:`salibi.models.config`).
SIZES: tuple[str, ...] = ("tiny", "small", "base", "large")
#: Position-information variants (DESIGN.md "Scale-ALiBi, exactly"); identical otherwise.
VARIANTS: tuple[str, ...] = ("scale-alibi", "alibi", "sincos", "none")
#: Attention backends (salibi.models.flex): auto = flex on CUDA, sdpa elsewhere.
ATTENTION_BACKENDS: tuple[str, ...] = ("auto", "sdpa", "flex")
#: Frozen-encoder evaluation protocols of ``salibi eval geobench`` (salibi.eval.protocols).
PROTOCOLS: tuple[str, ...] = ("knn", "linear", "seg-linear", "seg-fpn", "majority")
#: Benchmark layouts ``salibi eval geobench --root`` reads (auto: told apart by the files).
BENCHMARKS: tuple[str, ...] = ("auto", "geobench", "geobench2")
#: What feeds a multi-modal task's probes: the cross-modal encoder's joint tokens or one encoder.
EVAL_FEATURES: tuple[str, ...] = ("auto", "joint", *MODALITIES)
#: Former protocol names still accepted: name -> the protocol it means now.
PROTOCOL_ALIASES: dict[str, str] = {"seg": "seg-linear"}
#: The untrained reference evaluated beside a checkpoint (``salibi eval geobench --baseline``, ``salibi ablate``).
RANDOM_INIT = "random-init"
#: Embedding spaces of ``salibi embed --space``, recorded as each output's ``space`` attribute: each
#: encoder's own (rows comparable within one modality) or the shared contrastive space (across modalities).
EMBEDDING_SPACES: tuple[str, ...] = ("encoder", "shared")
#: What ``salibi ablate --evals`` evaluates: GEO-Bench-style probes, cross-modal retrieval.
EVALUATIONS: tuple[str, ...] = ("geobench", "retrieval")
#: Nearest neighbours listed per query by ``salibi search`` and per chip by ``salibi explore``.
NEIGHBOURS_K = 10
#: salibi map's 2-D projections (auto: UMAP when umap-learn is installed, else PCA).
MAP_METHODS: tuple[str, ...] = ("auto", "umap", "pca")
#: What salibi map can colour points by: k-means clusters or a column of the output.
MAP_COLOUR_COLUMNS: tuple[str, ...] = ("cluster", "modality", "source", "bands", "gsd")
#: Train-size partitions of every GEO-Bench task (``<name>_partition.json``), smallest first.
TRAIN_SIZE_PARTITIONS: tuple[str, ...] = tuple(
    f"{fraction}x_train" for fraction in ("0.01", "0.02", "0.05", "0.10", "0.20", "0.50", "1.00")
)

# File formats: the ``format`` / ``format_version`` every salibi file carries.
ALIGNED_FORMAT, ALIGNED_FORMAT_VERSION = "salibi-aligned", 2
EMBEDDINGS_FORMAT, EMBEDDINGS_FORMAT_VERSION = "salibi-embeddings", 2
CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION = "salibi-checkpoint", 1
TRAINER_FORMAT, TRAINER_FORMAT_VERSION = "salibi-trainer-state", 1
RUN_FORMAT, RUN_FORMAT_VERSION = "salibi-run", 1
INITIAL_WEIGHTS_FORMAT, INITIAL_WEIGHTS_FORMAT_VERSION = "salibi-initial-weights", 1
STUDY_FORMAT, STUDY_FORMAT_VERSION = "salibi-ablation-study", 1
STUDY_INITIAL_WEIGHTS_FORMAT, STUDY_INITIAL_WEIGHTS_FORMAT_VERSION = "salibi-ablation-initial-weights", 1
ABLATION_FORMAT, ABLATION_FORMAT_VERSION = "salibi-ablation", 1
EVAL_RESULTS_FORMAT, EVAL_RESULTS_FORMAT_VERSION = "salibi-eval-results", 2
EVAL_FEATURES_FORMAT, EVAL_FEATURES_FORMAT_VERSION = "salibi-eval-features", 1
#: ``salibi eval retrieval --output``: cross-modal recall of a checkpoint (and its untrained twin).
RETRIEVAL_FORMAT, RETRIEVAL_FORMAT_VERSION = "salibi-retrieval", 1
#: ``salibi fetch``'s manifest.json (and its per-shard parts in manifests/).
FETCH_FORMAT, FETCH_FORMAT_VERSION = "salibi-fetch", 1
