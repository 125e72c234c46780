"""The Scale-ALiBi model: unimodal ViT encoders, cross-modal fusion, MAE decoder, InfoNCE.

Read top to bottom: :class:`ScaleAlibiModel`'s parts, then its methods in data-flow order
(geometry -> patch tokens -> masking -> encoders -> contrastive loss -> fusion -> decoder ->
reconstruction loss), then ``forward``, which returns the losses; the input checks are in
:mod:`salibi.models.input_checks`.
The layers are in :mod:`salibi.models.blocks`; the contrastive loss and the DDP collectives
in :mod:`salibi.models.losses`.

Notation in shape comments: ``B`` batch, ``C`` channels, ``p`` patch size, ``N_m`` patches of
modality ``m`` (``(H/p) * (W/p)``, row-major), ``k_m`` kept patches, ``D`` width, ``H`` heads,
``Dd`` decoder width, ``P`` projection width.

Positions: no position embedding in the ``scale-alibi`` and ``alibi`` variants. Every
attention layer (self, cross, decoder) adds ``-m_h * distance / L`` to its logits, with the
distance between patch centres on the ground (``scale-alibi``: all chips of a sample share one
ground footprint, top-left corner at the origin) or on each chip's own patch grid in patch
units, the grids centred on one another (``alibi``, the GSD-blind control:
:func:`~salibi.models.attention_bias.patch_unit_grid`; ``sincos`` embeds the same
coordinates). One ``L`` for the model: ``config.ref_length``, always set (a
call's ``ref_length=`` argument overrides it), so a chip's GSD changes its bias in a unimodal
``encode`` as in pretraining. The biases are built once per batch from the
core's cached tables (:mod:`salibi.models.attention_bias`) and shared by every layer.

GSD per chip: ``gsd[m]`` is a float, or a ``(B,)`` tensor or array of each chip's own GSD (web
tiles at different latitudes have different ground GSDs); samples of unequal GSDs get each its
own Scale-ALiBi biases, the same as when called one at a time
(:meth:`~salibi.models.attention_bias.TokenGeometry.per_sample`).

Attention backend (``attention``, :mod:`salibi.models.flex`): ``sdpa`` gives the layers the
biases as tensors ``(B|1, H, k_q, k_k)``; ``flex`` gives them the tokens' coordinates and the
kernel computes the bias (nothing of size ``k_q * k_k`` is stored); ``auto`` is ``flex`` on
CUDA and ``sdpa`` elsewhere, decided at each call from the model's device.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from salibi.bias import PatchGrid
from salibi.errors import InputError
from salibi.models.attention_bias import TokenGeometry, patch_unit_grid
from salibi.models.blocks import AttentionBias, Block, Encoder, FusionStage, Mlp, sincos_embedding
from salibi.models.config import ModelConfig
from salibi.models.flex import NO_BIAS, resolve_attention
from salibi.models.input_checks import check_gsd, check_images, read_batch
from salibi.models.losses import global_means, info_nce
from salibi.vocabulary import MODALITIES


def kept_patches(patches: int, mask_ratio: float) -> int:
    """How many of a chip's ``patches`` the encoders see at ``mask_ratio``: at least one."""
    return max(1, int(patches * (1.0 - mask_ratio)))


def fusion_stages(modalities: Collection[str]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """The fusion stages of a model of ``modalities``, by name, in the order they run (the order of
    :data:`~salibi.vocabulary.MODALITIES`): ``low`` fuses SAR with low-res optical, ``high`` their
    joint tokens (or the one of them present) with high-res optical."""
    low = tuple(m for m in MODALITIES[:2] if m in modalities)
    stages: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    if len(low) == 2:
        stages["low"] = (low[:1], low[1:])
    if low and MODALITIES[2] in modalities:
        stages["high"] = (low, MODALITIES[2:])
    return stages


class ScaleAlibiModel(nn.Module):
    """Three unimodal encoders, two fusion stages, a contrastive head per modality, a decoder.

    Build with :func:`salibi.models.build`; see the package docstring for the API.
    ``attention``: the attention backend, ``auto``, ``sdpa`` or ``flex`` (a setting of the
    running model, not of its weights: checkpoints do not store it).
    """

    def __init__(self, config: ModelConfig, attention: str = "auto") -> None:
        super().__init__()
        config.validate()
        self.config = config
        resolve_attention(attention, torch.device("cpu"))  # an InputError for an unknown name
        self.attention = attention
        self.modalities: tuple[str, ...] = config.modalities
        #: per modality: channels, bands, gsd, mean, std (training-set facts; see checkpoint.py)
        self.modality_info: dict[str, dict[str, Any]] = {
            m: {"channels": config.channels[m], "bands": None, "gsd": None, "mean": None, "std": None}
            for m in self.modalities
        }
        #: set by load_checkpoint: the extra keywords given to save_checkpoint, and the folder
        self.checkpoint_metadata: dict[str, Any] = {}
        self.checkpoint_path: Path | None = None
        c, p = config, config.patch_size

        # unimodal encoders
        self.encoders = nn.ModuleDict(
            {m: Encoder(c.channels[m], c.dim, c.depth, c.heads, p, c.mlp_ratio) for m in self.modalities}
        )
        # contrastive: pooled tokens -> small FFN -> projection (then L2 norm), learnable temperature
        self.projectors = nn.ModuleDict(
            {m: nn.Sequential(nn.LayerNorm(c.dim, eps=1e-6), Mlp(c.dim, c.dim, c.proj_dim)) for m in self.modalities}
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / c.temperature)))
        # fusion: SAR <-> low-res optical, then (their joint tokens) <-> high-res optical
        stages = fusion_stages(self.modalities)
        self.fusion_low = FusionStage(c.dim, c.heads, c.fusion_depth, c.mlp_ratio) if "low" in stages else None
        self.fusion_high = FusionStage(c.dim, c.heads, c.fusion_depth, c.mlp_ratio) if "high" in stages else None
        self.fusion_norm = nn.LayerNorm(c.dim, eps=1e-6)
        # MAE decoder over the joint tokens of every modality, mask tokens at masked patches
        self.decoder_embed = nn.Linear(c.dim, c.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.modality_tokens = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(1, 1, c.decoder_dim)) for m in self.modalities}
        )
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_dim, c.decoder_heads, c.mlp_ratio) for _ in range(c.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(c.decoder_dim, eps=1e-6)
        self.decoder_pred = nn.ModuleDict({m: nn.Linear(c.decoder_dim, p * p * c.channels[m]) for m in self.modalities})
        self._init_weights()

    def not_layer_weights(self) -> list[nn.Parameter]:
        """The parameters that are not weights of a layer, which take no weight decay (as MAE's and
        CLIP's): the decoder's mask and modality tokens, and the contrastive temperature."""
        return [self.mask_token, *self.modality_tokens.values(), self.logit_scale]

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):  # patch embeddings: as a linear layer (MAE)
                nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
                nn.init.zeros_(module.bias)  # type: ignore[arg-type]
        nn.init.normal_(self.mask_token, std=0.02)
        for token in self.modality_tokens.values():
            nn.init.normal_(token, std=0.02)

    # -- geometry, patch tokens, masking ---------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def _compute_dtype(self) -> torch.dtype:
        """The dtype attention queries will have: the autocast dtype when autocast is on."""
        kind = self.device.type
        if torch.is_autocast_enabled(kind):
            return torch.get_autocast_dtype(kind)
        return self.logit_scale.dtype

    def attention_backend(self) -> str:
        """The backend ``attention`` means on the model's device now: ``sdpa`` or ``flex``."""
        return resolve_attention(self.attention, self.device)

    def unbiased(self) -> AttentionBias:
        """What the layers get in the variants without a bias: nothing (SDPA) or flex without a score_mod."""
        return NO_BIAS if self.attention_backend() == "flex" else None

    def geometry(
        self,
        sizes: Mapping[str, tuple[int, int]],
        gsd: Mapping[str, float | np.ndarray],
        ref_length: float | None = None,
    ) -> TokenGeometry | None:
        """The patch grids of one call (``sizes``: modality -> (H, W) in px; ``gsd``: modality ->
        metres per pixel, or a ``(B,)`` array of each sample's) with the one reference length of
        the call, for the model's attention backend; ``None`` for the ``sincos`` and ``none``
        variants."""
        variant, p = self.config.variant, self.config.patch_size
        if variant not in ("scale-alibi", "alibi"):
            return None
        if variant == "alibi":  # each chip's own patch grid, GSD ignored, grids centred: distances in patches
            grids = {m: patch_unit_grid(h // p, w // p, p) for m, (h, w) in sizes.items()}
            return TokenGeometry(grids, float(p), self.device, self._compute_dtype(), self.attention_backend())
        length = float(ref_length or self.config.ref_length or 0.0)  # validate() always sets ref_length
        per_sample = [len(g) for g in gsd.values() if isinstance(g, np.ndarray)]
        if per_sample:
            return TokenGeometry.per_sample(
                {m: (h // p, w // p) for m, (h, w) in sizes.items()},
                p,
                {m: np.broadcast_to(np.asarray(gsd[m], np.float64), (per_sample[0],)) for m in sizes},
                length,
                self.device,
                self._compute_dtype(),
                self.attention_backend(),
            )
        grids = {m: PatchGrid(h // p, w // p, p, float(gsd[m])) for m, (h, w) in sizes.items()}
        return TokenGeometry(grids, length, self.device, self._compute_dtype(), self.attention_backend())

    def patch_tokens(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, D) patch embeddings (+ sin-cos positions in that variant)."""
        encoder: Encoder = self.encoders[modality]  # type: ignore[assignment]
        x = encoder.embed_patches(images)
        if self.config.variant == "sincos":
            p = self.config.patch_size
            x = x + sincos_embedding(images.shape[-2] // p, images.shape[-1] // p, x.shape[-1], x.device, x.dtype)
        return x

    def random_masking(self, batch: int, patches: int, ratio: float, noise: torch.Tensor | None = None) -> torch.Tensor:
        """(B, k) sorted indices of the patches each sample keeps, k = max(1, int(N * (1 - ratio))).

        Independent per sample, from torch's global CPU generator whatever the device (so
        ``torch.manual_seed`` / ``torch.set_rng_state`` fix the masks), or the given (B, N) ``noise``.
        """
        keep = kept_patches(patches, ratio)
        if noise is None:
            noise = torch.rand(batch, patches)
        elif tuple(noise.shape) != (batch, patches):
            raise InputError(f"mask noise of shape {tuple(noise.shape)}: expected ({batch}, {patches})")
        return noise.to(self.device, non_blocking=True).argsort(dim=1)[:, :keep].sort(dim=1).values

    # -- unimodal encoding (inference) ----------------------------------------------------------

    def encode(
        self, images: torch.Tensor, modality: str, gsd: float | torch.Tensor, ref_length: float | None = None
    ) -> torch.Tensor:
        """(B, C, H, W) normalised images -> (B, N, D) encoder tokens, N = (H/p)*(W/p), row-major.

        No masking. ``gsd``: metres per pixel, or a ``(B,)`` tensor of each image's. ``ref_length``
        (metres) overrides the model's reference length ``config.ref_length`` for this call.
        """
        images = self._check_images(images, modality)
        size = (images.shape[-2], images.shape[-1])
        geometry = self.geometry(
            {modality: size}, {modality: self._check_gsd(gsd, modality, images.shape[0])}, ref_length
        )
        bias = (
            geometry.full_bias(modality, modality, self.config.heads) if geometry else self.unbiased()
        )  # (1, H, N, N) or FlexBias
        return self.encoders[modality](self.patch_tokens(images, modality), bias)

    def embed(
        self, images: torch.Tensor, modality: str, gsd: float | torch.Tensor, ref_length: float | None = None
    ) -> torch.Tensor:
        """(B, C, H, W) -> (B, D): :meth:`encode`'s tokens pooled (:meth:`pool`)."""
        return self.pool(self.encode(images, modality, gsd, ref_length))

    @staticmethod
    def pool(tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) encoder tokens -> (B, D): their mean, the feature :meth:`embed` gives."""
        return tokens.mean(dim=1)

    def encode_joint(
        self,
        images: Mapping[str, torch.Tensor],
        gsd: Mapping[str, float | torch.Tensor],
        ref_length: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unmasked cross-modal encoding (inference) of co-located chips of two or more modalities:
        modality -> (B, C_m, H_m, W_m) normalised images and metres per pixel -> modality ->
        (B, N_m, D) joint tokens of the cross-modal encoder. ``L`` is the model's
        ``config.ref_length`` (``ref_length`` overrides it for this call), as in pretraining."""
        checked, gsds = self._read_batch({**images, "gsd": gsd})
        p = self.config.patch_size
        geometry = self.geometry({m: (x.shape[-2], x.shape[-1]) for m, x in checked.items()}, gsds, ref_length)
        ids: dict[str, torch.Tensor] = {}
        self_bias: dict[str, AttentionBias] = {}
        encoded: dict[str, torch.Tensor] = {}
        for m, x in checked.items():
            if geometry is not None:  # ids (1, N), bias (1, H, N, N): broadcast over the batch
                ids[m], self_bias[m] = geometry.ids(m), geometry.full_bias(m, m, self.config.heads)
            else:
                n = (x.shape[-2] // p) * (x.shape[-1] // p)
                ids[m], self_bias[m] = torch.arange(n, device=self.device).unsqueeze(0), self.unbiased()
            encoded[m] = self.encoders[m](self.patch_tokens(x, m), self_bias[m])
        return self.fuse(encoded, ids, geometry, self_bias)

    def embed_joint(
        self,
        images: Mapping[str, torch.Tensor],
        gsd: Mapping[str, float | torch.Tensor],
        ref_length: float | None = None,
    ) -> torch.Tensor:
        """(B, D): :meth:`encode_joint`'s tokens pooled (:meth:`pool_joint`)."""
        return self.pool_joint(self.encode_joint(images, gsd, ref_length))

    @staticmethod
    def pool_joint(joint: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """modality -> (B, N_m, D) joint tokens -> (B, D): the mean over modalities of each
        modality's mean token, so a modality with more patches does not outweigh the others."""
        return torch.stack([x.mean(dim=1) for x in joint.values()]).mean(dim=0)

    # -- pretraining: contrastive loss, fusion, decoder, reconstruction loss ------------------

    def contrastive_loss(self, pooled: dict[str, torch.Tensor]) -> torch.Tensor:
        """Symmetric InfoNCE (:func:`~salibi.models.losses.info_nce`) of the projected features,
        averaged over the modality pairs present; features of all ranks.

        pooled: modality -> (B, D) mean of the encoder tokens.
        """
        return info_nce({m: self.project(x, m) for m, x in pooled.items()}, self.logit_scale)

    def project(self, pooled: torch.Tensor, modality: str) -> torch.Tensor:
        """(B, D) pooled encoder tokens of ``modality`` (:meth:`pool`) -> (B, P) float32, L2-normalised:
        the shared space in which InfoNCE compares the modalities (``salibi embed --space shared``)."""
        return F.normalize(self.projectors[modality](pooled).float(), dim=-1)

    def fuse(
        self,
        tokens: dict[str, torch.Tensor],
        ids: dict[str, torch.Tensor],
        geometry: TokenGeometry | None,
        self_bias: dict[str, AttentionBias],
    ) -> dict[str, torch.Tensor]:
        """Cross-modal encoder: SAR <-> low-res optical, then their joint tokens <-> high-res.

        tokens: modality -> (B, k_m, D) unimodal encoder tokens; ids: modality -> (B, k_m)
        global token ids; self_bias: modality -> its encoder's bias (reused here). Returns
        modality -> (B, k_m, D) joint tokens. With two modalities only the stage joining them runs.
        """
        built: dict[tuple[tuple[str, ...], tuple[str, ...]], AttentionBias] = {
            ((m,), (m,)): b for m, b in self_bias.items()
        }

        def bias(q: tuple[str, ...], k: tuple[str, ...]) -> AttentionBias:  # (B, H, k_q, k_k) or FlexBias
            if (q, k) not in built:
                built[q, k] = (
                    self.unbiased()
                    if geometry is None
                    else geometry.bias(
                        torch.cat([ids[m] for m in q], dim=1), torch.cat([ids[m] for m in k], dim=1), self.config.heads
                    )
                )
            return built[q, k]

        def run(stage: FusionStage, a: tuple[str, ...], b: tuple[str, ...]) -> None:
            biases = {"aa": bias(a, a), "ab": bias(a, b), "bb": bias(b, b), "ba": bias(b, a)}
            x_a, x_b = stage(torch.cat([tokens[m] for m in a], dim=1), torch.cat([tokens[m] for m in b], dim=1), biases)
            tokens.update(zip(a, x_a.split([tokens[m].shape[1] for m in a], dim=1)))
            tokens.update(zip(b, x_b.split([tokens[m].shape[1] for m in b], dim=1)))

        tokens = dict(tokens)
        for name, (a, b) in fusion_stages(tokens).items():
            stage = self.fusion_low if name == "low" else self.fusion_high
            assert stage is not None
            run(stage, a, b)
        return {m: self.fusion_norm(x) for m, x in tokens.items()}

    def decode(
        self,
        joint: dict[str, torch.Tensor],
        keep: dict[str, torch.Tensor],
        grid_shapes: dict[str, tuple[int, int]],
        geometry: TokenGeometry | None,
    ) -> dict[str, torch.Tensor]:
        """MAE decoder over all patches of every modality: kept ones from the joint tokens,
        masked ones a mask token; returns modality -> (B, N_m, p*p*C_m) predicted pixels."""
        c = self.config
        sequences, sizes = [], []
        for m, x in joint.items():
            rows, cols = grid_shapes[m]
            x = self.decoder_embed(x)  # (B, k_m, Dd)
            full = self.mask_token.to(x.dtype).expand(x.shape[0], rows * cols, -1)  # (B, N_m, Dd)
            full = full.scatter(1, keep[m].unsqueeze(-1).expand(-1, -1, x.shape[-1]), x)
            full = full + self.modality_tokens[m].to(x.dtype)
            if c.variant == "sincos":
                full = full + sincos_embedding(rows, cols, c.decoder_dim, full.device, full.dtype)
            sequences.append(full)
            sizes.append(rows * cols)
        x = torch.cat(sequences, dim=1)  # (B, sum N_m, Dd)
        every = list(joint)
        bias = (
            geometry.full_bias(every, every, c.decoder_heads) if geometry else self.unbiased()
        )  # (1, Hd, sum N, sum N)
        for block in self.decoder_blocks:
            x = block(x, bias)
        x = self.decoder_norm(x)
        return {m: self.decoder_pred[m](xm) for m, xm in zip(joint, x.split(sizes, dim=1))}

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, p*p*C), patches row-major, pixels (row, col, channel)."""
        b, ch, h, w = images.shape
        p = self.config.patch_size
        x = images.reshape(b, ch, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * ch)

    def reconstruction_loss(self, images: torch.Tensor, pred: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the masked patches, targets normalised per patch (MAE)."""
        target = self.patchify(images.float())  # (B, N, p*p*C)
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
        masked = torch.ones(target.shape[:2], device=target.device)
        masked.scatter_(1, keep, 0.0)  # (B, N): 1 where hidden from the encoders
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)
        return (per_patch * masked).sum() / masked.sum()

    # -- forward ----------------------------------------------------------------------------------

    def forward(
        self,
        batch: Mapping[str, object],
        mask_ratio: float | None = None,
        noise: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Pretraining step: losses for a batch of co-located chips.

        ``batch``: modality -> (B, C_m, H_m, W_m) normalised images (two or more of the model's
        modalities) and ``"gsd"``: modality -> float or (B,) tensor (each chip's GSD). ``mask_ratio`` overrides
        ``config.mask_ratio``; ``noise`` (modality -> (B, N_m)) replaces the random draw that
        orders patches for masking (lowest kept), e.g. to shard one global draw across ranks.

        Returns scalar tensors ``loss`` = contrastive_weight * ``contrastive`` +
        reconstruction_weight * ``reconstruction``, ``reconstruction_<modality>`` and
        ``temperature``. Under torch.distributed the values are global-batch means on every
        rank, and the gradients are such that DDP's averaging gives the global-batch gradient.
        """
        c = self.config
        ratio = c.mask_ratio if mask_ratio is None else float(mask_ratio)
        if not 0.0 <= ratio < 1.0:
            raise InputError(f"mask_ratio {ratio}: must be in [0, 1)")
        images, gsd = self._read_batch(batch)
        batch_size, p = next(iter(images.values())).shape[0], c.patch_size
        grid_shapes = {m: (x.shape[-2] // p, x.shape[-1] // p) for m, x in images.items()}
        geometry = self.geometry({m: (x.shape[-2], x.shape[-1]) for m, x in images.items()}, gsd)

        # 1. patch tokens and random masks; the kept tokens of each modality
        tokens, keep, ids, self_bias = {}, {}, {}, {}
        for m, x in images.items():
            n = grid_shapes[m][0] * grid_shapes[m][1]
            keep[m] = self.random_masking(batch_size, n, ratio, None if noise is None else noise.get(m))  # (B, k_m)
            patches = self.patch_tokens(x, m)  # (B, N_m, D)
            tokens[m] = patches.gather(1, keep[m].unsqueeze(-1).expand(-1, -1, patches.shape[-1]))  # (B, k_m, D)
            ids[m] = geometry.ids(m, keep[m]) if geometry is not None else keep[m]  # (B, k_m) global ids
            self_bias[m] = (
                geometry.bias(ids[m], ids[m], c.heads) if geometry is not None else self.unbiased()
            )  # (B, H, k, k)

        # 2. unimodal encoders (each bias is built once and reused by every layer)
        encoded = {m: self.encoders[m](tokens[m], self_bias[m]) for m in images}  # (B, k_m, D)

        # 3. contrastive loss on the mean-pooled unimodal tokens
        losses: dict[str, torch.Tensor] = {}
        with torch.autocast(self.device.type, enabled=False):
            losses["contrastive"] = self.contrastive_loss({m: x.float().mean(dim=1) for m, x in encoded.items()})

        # 4. fusion, then 5. reconstruction of the masked patches of every modality
        masked = [m for m in images if keep[m].shape[1] < grid_shapes[m][0] * grid_shapes[m][1]]
        if masked:  # (nothing is hidden with mask_ratio 0, or chips of one patch)
            pred = self.decode(self.fuse(encoded, ids, geometry, self_bias), keep, grid_shapes, geometry)
            with torch.autocast(self.device.type, enabled=False):
                for m in masked:
                    losses[f"reconstruction_{m}"] = self.reconstruction_loss(images[m], pred[m], keep[m])

        out = global_means(losses)
        parts = [out[f"reconstruction_{m}"] for m in masked]
        out["reconstruction"] = torch.stack(parts).mean() if parts else out["contrastive"].new_zeros(())
        out["loss"] = c.contrastive_weight * out["contrastive"] + c.reconstruction_weight * out["reconstruction"]
        out["temperature"] = 1.0 / self.logit_scale.detach().float().exp().clamp(max=100.0)
        return out

    # -- checking inputs (salibi.models.input_checks) --------------------------------------------------

    def _read_batch(self, batch: Mapping[str, object]) -> tuple[dict[str, torch.Tensor], dict[str, float | np.ndarray]]:
        return read_batch(self, batch)

    def _check_images(
        self, images: object, modality: str, batch_size: int | None = None, where: str = "images"
    ) -> torch.Tensor:
        return check_images(self, images, modality, batch_size, where)

    _check_gsd = staticmethod(check_gsd)
