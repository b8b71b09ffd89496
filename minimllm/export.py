"""Every course model as a transformers folder (hand-written; no chapter teaches it).

Method A with the linear or MLP projector *is* LLaVA: `minimllm.mllm.save_transformers` writes a
`LlavaForConditionalGeneration`. Every other projector (pixel shuffle, resampler, Q-Former,
C-Abstractor, D-Abstractor) has no class in transformers, so the folder carries its own code, as
the Hub's multimodal models with their own projectors do (Qwen-VL's first release, for one):
`auto_map` in config.json and processor_config.json names the classes of three files beside the
weights, and transformers loads them with `trust_remote_code=True`:

    configuration_minimllm.py   MiniMLLMConfig: LlavaConfig + the projector's `ProjectorConfig`
    modeling_minimllm.py        MiniMLLMForConditionalGeneration: LLaVA (SigLIP + Llama) with
                                the course's projector in place of LLaVA's two-layer MLP
    processing_minimllm.py      MiniMLLMProcessor: `<image>` -> M image tokens; pixels exactly as
                                `minimllm.vision.to_pixel_values` makes them

The files are generated, never written twice: `remote_code()` copies the projectors' module
(`minimllm.projectors`) and `to_pixel_values` from the package's source (`inspect.getsource`),
followed by the transformers classes defined below. They import nothing but torch, numpy, PIL and
transformers, so the folder loads where minimllm is not installed.

    from minimllm.export import save_transformers
    save_transformers(model, tokenizer, "assistant-hf")          # or: minimllm export DIR OUT
    hf = AutoModelForImageTextToText.from_pretrained("assistant-hf", trust_remote_code=True)
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    BatchFeature,
    DynamicCache,
    GenerationConfig,
    GenerationMixin,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedModel,
    ProcessorMixin,
)
from transformers.image_processing_utils import BaseImageProcessor

from minimllm import projectors
from minimllm.lm import LMConfig
from minimllm.mllm import merge_image_features
from minimllm.projectors import ProjectorConfig
from minimllm.views import colour_grid, silhouette
from minimllm.vision import to_pixel_values
from minimllm.xattn import CrossAttentionMLLM, GatedCrossAttention

# Method B's bookkeeping of which text position sees which image, as a function of a model whose
# config has `tokens_per_image` and `image_token_id` (minimllm's, or the transformers one below)
image_context = CrossAttentionMLLM.image_context

__all__ = ["LLAVA_PROJECTORS", "MiniMLLMConfig", "MiniMLLMForConditionalGeneration",
           "MiniMLLMCrossAttentionConfig", "ImageSlot", "CrossAttentionLlamaLayer",
           "MiniMLLMCrossAttentionForConditionalGeneration", "MiniMLLMImageProcessor",
           "MiniMLLMProcessor", "remote_code", "needs_remote_code", "to_transformers",
           "to_transformers_processor", "generation_config", "save_transformers"]

LLAVA_PROJECTORS = ("linear", "mlp")  # the projectors that LLaVA's own class holds


# ------------------------------------------------------------------------------------------------
# The classes of an exported folder. Their source is copied into the folder (`remote_code`), so
# they may use only names that the file headers in `remote_code` import, under the same names.

class MiniMLLMConfig(LlavaConfig):
    """LLaVA's config (SigLIP vision config, Llama text config, `image_token_index`,
    `image_seq_length` = M, `vision_feature_layer`) plus `projector`, the `ProjectorConfig` of
    the course's projector as a dict (kind, d_vision, d_lm, num_tokens, n_patches, options), and
    `colour_grid`: None for one view of each image, else the cells per side of the colour view
    of a two-view model (`minimllm.views`; `image_seq_length` is then 2M)."""

    model_type = "minimllm"
    projector: dict | None = None
    colour_grid: int | None = None


class MiniMLLMForConditionalGeneration(LlavaForConditionalGeneration):
    """LLaVA (vision tower -> projector -> image tokens in place of the `<image>` placeholders ->
    Llama) whose projector is the course's (`build_projector`): it turns the N patch features
    of the chosen vision layer into M = `config.image_seq_length` tokens (B, M, d_lm)."""

    config_class = MiniMLLMConfig

    def __init__(self, config: MiniMLLMConfig):
        super().__init__(config)
        if not config.projector:
            raise ValueError("this config has no `projector`: export the model with minimllm")
        projector = ProjectorConfig(**config.projector).build()
        views = 2 if config.colour_grid else 1
        m = projector.num_tokens(config.projector["n_patches"])
        if views * m != config.image_seq_length:
            raise ValueError(f"the {projector.kind} projector makes {m} image tokens per view, "
                             f"{views} view(s), but the config says "
                             f"image_seq_length={config.image_seq_length}")
        self.model.multi_modal_projector = projector  # (B, N, d_vision) -> (B, M, d_lm)
        if config.colour_grid:  # the tower sees each image's two views, one after the other
            self.model.vision_tower.register_forward_pre_hook(self.two_views, with_kwargs=True)
        self.post_init()

    def two_views(self, tower, args, kwargs):
        """Forward pre-hook of the vision tower: pixel_values (n, 3, S, S) -> (2n, 3, S, S),
        each image's silhouette then its colour grid, so that its 2M image tokens come in the
        order of `minimllm.views.TwoViewMLLM` (silhouette's M, then colour grid's M)."""
        pixel_values, *rest = args
        views = torch.stack([silhouette(pixel_values),
                             colour_grid(pixel_values, self.config.colour_grid)], dim=1)
        return (views.flatten(0, 1), *rest), kwargs


class MiniMLLMCrossAttentionConfig(LlavaConfig):
    """Method B's config: LLaVA's fields for the towers (SigLIP vision config, Llama text
    config, `image_token_index`, `vision_feature_layer`; `image_seq_length` = the sequence
    tokens per `<image>`: its one marker, or NVLM-H's thumbnails) plus the course's `projector`
    (and `thumbnail_projector`) as `ProjectorConfig` dicts, `lm`, the `LMConfig` whose sizes the
    gated cross-attention blocks take, and `cross_attention_layers`, the Llama layers that a
    block comes before."""

    model_type = "minimllm_cross_attention"
    projector: dict | None = None
    thumbnail_projector: dict | None = None
    lm: dict | None = None
    cross_attention_layers: list | None = None

    @property
    def tokens_per_image(self) -> int:
        return self.image_seq_length


class ImageSlot:
    """What the cross-attention layers read during one forward pass: the batch's `ImageContext`
    (None: text only) and the position of its first new token."""

    context = None
    start = 0


class CrossAttentionLlamaLayer(nn.Module):
    """minimllm's `CrossAttentionDecoderLayer` as transformers' `LlamaModel` calls a decoder
    layer: the gated cross-attention block on the image states of the `ImageSlot`, then the
    Llama layer, unchanged (skipped block when there is no image)."""

    def __init__(self, cross: nn.Module, layer: nn.Module, slot: ImageSlot):
        super().__init__()
        self.cross, self.layer, self.slot = cross, layer, slot

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        context = self.slot.context
        if context is not None:
            attn_mask, has_image = context.masks(self.slot.start, hidden_states.shape[1])
            B, I, M, D = context.states.shape
            hidden_states = self.cross(hidden_states, context.states.reshape(B, I * M, D),
                                       attn_mask, has_image)                      # (B, T, D)
        return self.layer(hidden_states, *args, **kwargs)


class MiniMLLMCrossAttentionForConditionalGeneration(PreTrainedModel, GenerationMixin):
    """Method B (Flamingo; Llama 3.2 Vision) as minimllm's `CrossAttentionMLLM` computes it: the
    vision tower (SigLIP) and the course's projector make M image states per image, which the
    text reads through gated cross-attention blocks before the chosen Llama layers; each
    `<image>` stays one marker in the sequence (NVLM-H: K thumbnail tokens), and a text
    position sees the latest image before it, nothing before the first. Generated tokens see
    the prompt's last image (kept on the KV cache)."""

    config_class = MiniMLLMCrossAttentionConfig
    base_model_prefix = "model"
    _supports_sdpa = True

    def __init__(self, config: MiniMLLMCrossAttentionConfig):
        super().__init__(config)
        if not (config.projector and config.lm and config.cross_attention_layers):
            raise ValueError("this config lacks `projector`, `lm` or `cross_attention_layers`: "
                             "export the model with minimllm")
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.projector = ProjectorConfig(**config.projector).build()  # (n, N, D_v) -> (n, M, D)
        self.thumbnail_projector = (ProjectorConfig(**config.thumbnail_projector).build()
                                    if config.thumbnail_projector else None)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.slot = ImageSlot()
        blocks, layers = LMConfig(**config.lm), self.language_model.model.layers
        for i in config.cross_attention_layers:
            layers[i] = CrossAttentionLlamaLayer(GatedCrossAttention(blocks), layers[i], self.slot)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def forward(self, input_ids=None, pixel_values=None, attention_mask=None, position_ids=None,
                cache=None, inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0,
                **kwargs):
        """input_ids (B, T) with `image_seq_length` markers per image, pixel_values (n, 3, S, S)
        in [-1, 1] -> the Llama output (logits (B, T, V)). Without pixel_values, the image
        context kept on `cache` by the call that had them (the prompt) is used."""
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)                # (B, T, D)
        use_cache = self.config.text_config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config.text_config)
        context = getattr(cache, "image_context", None)
        if pixel_values is not None:
            if input_ids is None:
                raise ValueError("pixel_values need input_ids: the image markers say where "
                                 "each image comes")
            hidden = self.vision_tower(pixel_values, output_hidden_states=True).hidden_states
            features = hidden[self.config.vision_feature_layer]                   # (n, N, D_v)
            context = image_context(self, input_ids, self.projector(features))
            if self.thumbnail_projector is not None:  # NVLM-H: thumbnails in the sequence too
                inputs_embeds = merge_image_features(inputs_embeds, input_ids,
                                                     self.thumbnail_projector(features),
                                                     self.config.image_token_id)
            if cache is not None:
                cache.image_context = context  # for the tokens generated after this prompt
        elif context is None and input_ids is not None and bool(
                (input_ids == self.config.image_token_id).any()):
            raise ValueError("input_ids hold image markers but no pixel_values were given: pass "
                             "the images (the processor makes both)")
        self.slot.context = context
        self.slot.start = cache.get_seq_length() if cache is not None else 0
        try:
            return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                       position_ids=position_ids, cache=cache,
                                       use_cache=use_cache, labels=labels,
                                       logits_to_keep=logits_to_keep, **kwargs)
        finally:
            self.slot.context = None


def _flat_images(images) -> list:
    """Images as transformers passes them (one image, a list, a list of lists per sample) -> one
    flat list; a (n, C, H, W) tensor stays one batch."""
    if isinstance(images, (list, tuple)):
        return [image for item in images for image in _flat_images(item)]
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return list(images)
    return [images]


class MiniMLLMImageProcessor(BaseImageProcessor):
    """Images -> `pixel_values` (n, 3, S, S) in [-1, 1], made by minimllm's own `to_pixel_values`
    (PIL images to RGB, resized with PIL's bilinear filter to S x S, [0, 255] -> [-1, 1]), so
    the pixels are the ones `minimllm chat` gives the model, bit for bit. The resizing,
    rescaling and normalising options of transformers' image processors do not apply."""

    model_input_names = ["pixel_values"]

    def __init__(self, image_size: int = 64, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        self.image_size = image_size

    def preprocess(self, images, return_tensors=None, **kwargs) -> BatchFeature:
        pixel_values = to_pixel_values(_flat_images(images), image_size=self.image_size)
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)


class MiniMLLMProcessor(ProcessorMixin):
    """The processor of an exported minimllm model: each `<image>` of the text becomes
    `image_seq_length` image tokens (M, the projector's output), the images become
    `pixel_values` (`MiniMLLMImageProcessor`), and the chat template is the course's (messages
    whose content is a string with `<image>`, or a list of image and text parts).
    `format_prompt` is the suffix the assistant was tuned with (`minimllm chat` appends it to
    each question); it is kept here for the caller to append, never added silently."""

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 1,
                 format_prompt: str = "", chat_template=None, image_token: str = "<image>"):
        if not isinstance(image_seq_length, int) or image_seq_length < 1:
            raise ValueError(f"image_seq_length must be an int >= 1, got {image_seq_length!r}")
        self.image_seq_length, self.format_prompt = image_seq_length, format_prompt
        self.image_token = image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {image_token!r} token")
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        return self.image_token * self.image_seq_length


# ------------------------------------------------------------------------------------------------
# The custom code of a folder, generated from the package's source

_NOTE = ("Generated by `minimllm export` (minimllm {version}) from the package's source: "
         "{sources}. Do not edit: export the model again. Needs torch and transformers (and "
         "Pillow for images), not minimllm.")

# file -> (docstring, modules copied whole, objects copied with what they use); a later file
# imports what an earlier one defines
_FILES = {
    "configuration_minimllm.py": (
        "The configs of minimllm models exported to transformers: LLaVA's, plus the course's "
        "projector (Method A) or its cross-attention blocks (Method B).",
        [], [MiniMLLMConfig, MiniMLLMCrossAttentionConfig]),
    "modeling_minimllm.py": (
        "minimllm models in transformers: Method A, LLaVA with the course's projector "
        "(minimllm.projectors, copied below); Method B, SigLIP + projector + Llama with the "
        "course's gated cross-attention blocks (minimllm.xattn, copied below).",
        [projectors], [MiniMLLMForConditionalGeneration,
                       MiniMLLMCrossAttentionForConditionalGeneration]),
    "processing_minimllm.py": (
        "The processor of a minimllm model exported to transformers: <image> -> M image tokens, "
        "pixels as minimllm.vision.to_pixel_values makes them (copied below).",
        [], [MiniMLLMImageProcessor, MiniMLLMProcessor]),
}
AUTO_MAP = {"AutoConfig": "configuration_minimllm.MiniMLLMConfig",
            "AutoModel": "modeling_minimllm.MiniMLLMForConditionalGeneration",
            "AutoModelForImageTextToText": "modeling_minimllm.MiniMLLMForConditionalGeneration"}
CROSS_ATTENTION_AUTO_MAP = {
    "AutoConfig": "configuration_minimllm.MiniMLLMCrossAttentionConfig",
    "AutoModel": "modeling_minimllm.MiniMLLMCrossAttentionForConditionalGeneration",
    "AutoModelForImageTextToText":
        "modeling_minimllm.MiniMLLMCrossAttentionForConditionalGeneration"}
PROCESSOR_AUTO_MAP = {"AutoProcessor": "processing_minimllm.MiniMLLMProcessor"}
IMAGE_PROCESSOR_AUTO_MAP = {"AutoImageProcessor": "processing_minimllm.MiniMLLMImageProcessor"}


def _loaded_names(source: str) -> set[str]:
    """The names a piece of code reads (candidates for globals it needs)."""
    return {n.id for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _import_line(name: str, value) -> str:
    """`import torch.nn.functional as F` / `from transformers import BatchFeature`: how a file
    gets `value` under `name` (from the shortest module path that exposes it)."""
    if inspect.ismodule(value):
        return (f"import {value.__name__}" if name == value.__name__
                else f"import {value.__name__} as {name}")
    parts = value.__module__.split(".")
    for i in range(1, len(parts) + 1):
        module = ".".join(parts[:i])
        if getattr(importlib.import_module(module), value.__name__, None) is value:
            break
    alias = "" if name == value.__name__ else f" as {name}"
    return f"from {module} import {value.__name__}{alias}"


def _is_literal(value) -> bool:
    if isinstance(value, (str, int, float, bool, type(None))):
        return True
    if isinstance(value, (tuple, list)):
        return all(_is_literal(v) for v in value)
    return isinstance(value, dict) and all(_is_literal(k) and _is_literal(v)
                                           for k, v in value.items())


class _CodeFile:
    """One generated file: the package's objects it needs, each after what it uses (functions,
    classes and constants of minimllm copied as source; anything else imported; the objects an
    earlier file of the folder was made for, imported from it)."""

    def __init__(self, siblings: dict[str, tuple[str, object]]):
        self.siblings = siblings  # name -> (an earlier file's module name, the object made there)
        self.defined: dict[str, object] = {}  # name -> object, for what this file holds
        self.imports: list[str] = []
        self.parts: list[str] = []
        self.sources: set[str] = set()  # the package modules copied from

    def add_module(self, module) -> None:
        """A whole module, less its `__all__`, its 'generated' first line and its imports from
        minimllm (whose objects are copied before it instead)."""
        text = inspect.getsource(module)
        lines = text.splitlines(keepends=True)
        for node in ast.parse(text).body:
            internal = isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "minimllm")
            if internal or (isinstance(node, ast.Assign)
                            and [getattr(t, "id", "") for t in node.targets] == ["__all__"]):
                lines[node.lineno - 1:node.end_lineno] = [""] * (node.end_lineno - node.lineno + 1)
            if internal:
                source = importlib.import_module(node.module)
                for alias in node.names:
                    self.need(alias.asname or alias.name, getattr(source, alias.name))
        text = "".join(lines)
        if text.startswith("# AUTOGENERATED"):
            text = text.split("\n", 1)[1]
        self.defined.update(vars(module))
        self.sources.add(module.__name__)
        self.parts.append(text.strip("\n"))

    def add(self, obj) -> None:
        """A function or class of the package, after the globals it reads."""
        self.defined[obj.__name__] = obj
        source = textwrap.dedent(inspect.getsource(obj))  # a method becomes a function
        module = vars(inspect.getmodule(obj))
        for name in sorted(_loaded_names(source)):
            if name in module and name != obj.__name__:
                self.need(name, module[name])
        self.sources.add(obj.__module__)
        self.parts.append(source.strip("\n"))

    def need(self, name: str, value) -> None:
        if name in self.defined:
            if self.defined[name] is not value and not (
                    _is_literal(value) and self.defined[name] == value):
                raise ValueError(f"two objects named {name!r} in one generated file: rename one")
            return
        if name in self.siblings and self.siblings[name][1] is value:
            self.imports.append(f"from .{self.siblings[name][0]} import {name}")
        elif inspect.ismodule(value):
            self.imports.append(_import_line(name, value))
        elif _is_literal(value):  # a constant: copied as its value
            self.parts.append(f"{name} = {value!r}")
        elif (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__.startswith(
                "minimllm"):
            if value.__name__ != name:
                raise ValueError(f"{value.__module__}.{value.__name__} is used as {name!r}: "
                                 "import it under its own name to generate code from it")
            self.add(value)
        elif inspect.isclass(value) or inspect.isfunction(value):
            self.imports.append(_import_line(name, value))
        else:
            raise ValueError(f"cannot copy {name} ({type(value).__name__}) into generated code")
        self.defined[name] = value

    def text(self, doc: str) -> str:
        from minimllm import __version__

        note = _NOTE.format(version=__version__, sources=", ".join(sorted(self.sources)))
        header = f'"""{textwrap.fill(doc, 97)}\n\n{textwrap.fill(note, 97)}"""'
        imports = sorted(set(self.imports), key=lambda line: (line.startswith("from ."),
                                                             line.startswith("from"), line))
        text = "\n\n\n".join([header, "\n".join(imports), *self.parts]) + "\n"
        if any(isinstance(n, (ast.Import, ast.ImportFrom)) and any(
                (getattr(n, "module", None) or a.name).startswith("minimllm") for a in n.names)
               for n in ast.walk(ast.parse(text))):
            raise ValueError("generated code still imports minimllm: copy what it needs instead")
        return text


def remote_code() -> dict[str, str]:
    """{file name: Python source} of the custom code an exported folder holds, generated from
    the package's source: each file holds the objects it needs, copied with `inspect.getsource`
    after the functions, classes and constants they use; only torch, numpy, PIL and
    transformers are imported, plus what an earlier file of the folder defines."""
    files, siblings = {}, {}
    for name, (doc, modules, objects) in _FILES.items():
        code = _CodeFile(siblings)
        for module in modules:
            code.add_module(module)
        for obj in objects:
            code.need(obj.__name__, obj)
        files[name] = code.text(doc)
        siblings.update({obj.__name__: (name.removesuffix(".py"), obj) for obj in objects})
    return files


# ------------------------------------------------------------------------------------------------
# Conversion

def needs_remote_code(model) -> bool:
    """True unless the model is Method A, one view of each image, with a projector that LLaVA
    holds (linear, MLP)."""
    _check_model(model)
    return (isinstance(model, CrossAttentionMLLM) or _colour_grid(model) is not None
            or model.projector.kind not in LLAVA_PROJECTORS)


def _colour_grid(model) -> int | None:
    """The colour grid of a two-view model (`minimllm.views.TwoViewMLLM`), else None."""
    return getattr(model.config, "colour_grid", None)


def _check_model(model) -> None:
    from minimllm.mllm import MLLM

    if not isinstance(model, MLLM):
        raise ValueError(f"expected a course MLLM (minimllm.mllm.MLLM, Method A, or "
                         f"minimllm.xattn.CrossAttentionMLLM, Method B), got "
                         f"{type(model).__name__}")
    for name in ("projector", "thumbnail_projector"):
        module = getattr(model, name, None)
        if module is not None and getattr(module, "config", None) is None:
            raise ValueError(f"the {name} has no `.config` (it was not made by build_projector): "
                             "build the model from its config (MLLMConfig, XAttnConfig)")


def _towers(model, config_class, **fields):
    """(transformers config of `config_class` with the towers of `model`, the state of the
    vision tower under `vision_prefix`): SigLIP (`minimllm.vision.to_transformers`) reading
    `vision_feature_layer` as ours does, and the Llama config of the language model."""
    from minimllm.lm import llama_config
    from minimllm.vision import to_transformers as vision_to_transformers

    hf_vision = vision_to_transformers(model.vision)
    vision_config = hf_vision.config
    vision_config.tie_last_hidden_states = True  # hidden_states[-1] after post_layernorm, as ours
    config = config_class(
        vision_config=vision_config, text_config=llama_config(model.config.lm),
        image_token_index=model.config.image_token_id, image_seq_length=model.tokens_per_image,
        vision_feature_layer=model.config.vision_feature_layer,
        vision_feature_select_strategy="full",
        tie_word_embeddings=model.config.lm.tie_embeddings,
        projector=model.projector.config.to_dict(), **fields)
    return config, hf_vision.state_dict()


def _load(hf, state: dict, model) -> None:
    """Our weights into `hf`, every one of its weights accounted for."""
    missing, unexpected = hf.load_state_dict({k: v.detach().clone() for k, v in state.items()},
                                             strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")
               and not (k.endswith("lm_head.weight") and model.config.lm.tie_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"weights do not map onto {type(hf).__name__}: missing {missing}, "
                           f"unexpected {unexpected}")


def to_transformers(model):
    """A course model in transformers, with the same logits up to float rounding. Method A:
    LLaVA for the linear and MLP projectors (`minimllm.mllm.to_transformers`), else
    `MiniMLLMForConditionalGeneration` (LLaVA with the course's projector; for a two-view model,
    with the views made in front of its vision tower). Method B:
    `MiniMLLMCrossAttentionForConditionalGeneration` (its own vision encoder, projector and
    cross-attention blocks; `minimllm.xattn.to_transformers` gives Mllama, whose vision tower is
    not ours)."""
    from minimllm.mllm import to_transformers as llava

    _check_model(model)
    if isinstance(model, CrossAttentionMLLM):
        return _cross_attention_to_transformers(model)
    if not needs_remote_code(model):
        return llava(model)
    config, vision_state = _towers(model, MiniMLLMConfig, colour_grid=_colour_grid(model))
    config.auto_map = dict(AUTO_MAP)
    hf = MiniMLLMForConditionalGeneration(config)
    state = {f"model.vision_tower.{k}": v for k, v in vision_state.items()}
    for k, v in model.lm.state_dict().items():
        state[k if k == "lm_head.weight" else f"model.language_model.{k}"] = v
    state.update({f"model.multi_modal_projector.{k}": v
                  for k, v in model.projector.state_dict().items()})
    _load(hf, state, model)
    return hf.to(model.device).eval()


def _cross_attention_to_transformers(model: CrossAttentionMLLM):
    c = model.config
    thumbnails = model.thumbnail_projector
    config, vision_state = _towers(
        model, MiniMLLMCrossAttentionConfig, lm=c.lm.to_dict(),
        cross_attention_layers=list(c.cross_attention_layers),
        thumbnail_projector=thumbnails.config.to_dict() if thumbnails is not None else None)
    config.auto_map = dict(CROSS_ATTENTION_AUTO_MAP)
    hf = MiniMLLMCrossAttentionForConditionalGeneration(config)
    state = {f"vision_tower.{k}": v for k, v in vision_state.items()}
    for k, v in model.lm.state_dict().items():  # wrapped layers: layers.i.cross / layers.i.layer
        state[f"language_model.{k}" if k == "lm_head.weight"
              else f"language_model.model.{k}"] = v
    for name in ("projector", "thumbnail_projector"):
        if getattr(model, name) is not None:
            state.update({f"{name}.{k}": v for k, v in getattr(model, name).state_dict().items()})
    _load(hf, state, model)
    return hf.to(model.device).eval()


def to_transformers_processor(tokenizer, model, format_prompt: str = ""):
    """The processor of `to_transformers(model)`: LLaVA's for the linear and MLP projectors
    (`minimllm.mllm.to_transformers_processor`), else a `MiniMLLMProcessor` with the model's
    tokens per `<image>` (M image tokens for Method A, one marker for Method B), minimllm's
    pixels and the course's chat template. Both prepare the inputs that `ChatProcessor`
    prepares for `minimllm chat`."""
    from minimllm.mllm import processor_chat_template
    from minimllm.mllm import to_transformers_processor as llava_processor
    from minimllm.tokenizer import IMAGE_TOKEN

    if not needs_remote_code(model):
        return llava_processor(tokenizer, model.config)
    image_processor = MiniMLLMImageProcessor(image_size=model.config.vision.image_size)
    image_processor.auto_map = dict(IMAGE_PROCESSOR_AUTO_MAP)
    processor = MiniMLLMProcessor(image_processor, tokenizer,
                                  image_seq_length=model.tokens_per_image,
                                  format_prompt=format_prompt,
                                  chat_template=processor_chat_template(), image_token=IMAGE_TOKEN)
    processor.auto_map = dict(PROCESSOR_AUTO_MAP)
    return processor


def generation_config(tokenizer, max_new_tokens: int = 96) -> GenerationConfig:
    """Greedy decoding of at most `max_new_tokens`, stopping at chapter 07's `<|end|>` or at
    `</s>` (where `ChatProcessor.decode` cuts a reply), as `minimllm chat` generates."""
    from minimllm.tokenizer import SPECIAL_IDS

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or (
            max_new_tokens < 1):
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    return GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens,
                            eos_token_id=[SPECIAL_IDS["end"], tokenizer.eos_token_id],
                            pad_token_id=tokenizer.pad_token_id,
                            bos_token_id=tokenizer.bos_token_id)


def save_transformers(model, tokenizer, path, max_new_tokens: int = 96,
                      format_prompt: str = "") -> Path:
    """Write a course model (Method A with any projector, or Method B) as a transformers folder,
    atomically, and return it: weights, config, generation config (`generation_config`) and
    processor; unless the model is LLaVA (Method A with the linear or MLP projector) also the
    custom code (`remote_code`), named in config.json's and processor_config.json's `auto_map`.
    `AutoModelForImageTextToText` / `AutoProcessor` (with `trust_remote_code=True` for custom
    code) and `pipeline("image-text-to-text")` load it offline and answer with the tokens of
    `minimllm chat`. `format_prompt`, the suffix the assistant was tuned with, is kept in a
    custom processor as `processor.format_prompt` (for the caller to append)."""
    from minimllm.pretrained import replace_folder

    hf = to_transformers(model).cpu()
    hf.generation_config = generation_config(tokenizer, max_new_tokens)
    processor = to_transformers_processor(tokenizer, model, format_prompt)
    files = remote_code() if needs_remote_code(model) else {}

    def write(folder: Path):
        hf.save_pretrained(folder)
        processor.save_pretrained(folder)
        for name, text in files.items():
            (folder / name).write_text(text)

    return replace_folder(path, write)
