"""Two views of each image, so that shape and colour reach the LM through different tokens.

Every stage-2 recipe so far names a seen shape for an object whose (colour, shape) pair no
training image holds (`data.HELDOUT_PAIRS`), even from a random vision tower: the conjunction forms
where stage 1 and stage 2 train, in the projector and the LM, which read shape from the same
image tokens that carry colour. This model gives them two views of the image instead, each
through the same tower and projector:

- the silhouette: every pixel that differs from the background white, the rest black. Shape,
  size and position, and no colour;
- the colour grid: each cell of a `grid` x `grid` grid painted the mean colour of the object
  pixels in it (the background where it holds none). Colour and position, and no shape.

The image's 2M tokens are the silhouette's M, then the colour grid's M. If shape answers for
unseen pairs now follow the silhouette, the conjunction came from colour and shape sharing
tokens; if they stay at a seen pair's shape, the LM composes it from the two views itself.

    python scripts/assistant_sweep.py --name two-views --views two \
        --cache data/checkpoints/assistant_sweeps/views.json --seeds 0 1
    python scripts/assistant_sweep.py --name summed-views --views sum \
        --cache data/checkpoints/assistant_sweeps/views.json --seeds 0 1   # M tokens, added
"""

import torch
import torch.nn.functional as F

from minimllm.data import BACKGROUND_RGB
from minimllm.mllm import MLLM


def object_mask(pixel_values: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """(n, 3, S, S) in [-1, 1] -> (n, 1, S, S) of 0 / 1: pixels whose largest channel difference
    from the background colour exceeds `threshold` (in pixel-value units, 2 / 255 per level)."""
    background = torch.tensor(BACKGROUND_RGB, dtype=pixel_values.dtype,
                              device=pixel_values.device).view(1, 3, 1, 1) / 255 * 2 - 1
    return ((pixel_values - background).abs().amax(1, keepdim=True) > threshold).to(pixel_values)


def silhouette(pixel_values: torch.Tensor) -> torch.Tensor:
    """(n, 3, S, S) -> (n, 3, S, S): objects white (1), background black (-1)."""
    return (object_mask(pixel_values) * 2 - 1).expand_as(pixel_values)


def colour_grid(pixel_values: torch.Tensor, grid: int = 3) -> torch.Tensor:
    """(n, 3, S, S) -> (n, 3, S, S): each of grid x grid cells filled with the mean colour of its
    object pixels, or the background's where it has none."""
    mask = object_mask(pixel_values)
    covered = F.adaptive_avg_pool2d(mask, grid)                          # (n, 1, g, g)
    mean = F.adaptive_avg_pool2d(pixel_values * mask, grid) / covered.clamp_min(1e-6)
    background = torch.tensor(BACKGROUND_RGB, dtype=pixel_values.dtype,
                              device=pixel_values.device).view(1, 3, 1, 1) / 255 * 2 - 1
    cells = torch.where(covered > 0, mean, background)                   # (n, 3, g, g)
    return F.interpolate(cells, size=pixel_values.shape[-2:], mode="nearest")


class TwoViewMLLM(MLLM):
    """Method A whose image is two views (silhouette, colour grid), each through the tower and
    projector: 2M image tokens per image."""

    grid = 3

    def __init__(self, config=None, vision=None, lm=None):
        super().__init__(config, vision, lm)
        self.num_image_tokens = 2 * self.num_image_tokens   # tokens_per_image: both views

    def image_features(self, pixel_values=None, vision_features=None) -> torch.Tensor:
        if vision_features is not None:
            raise ValueError("TwoViewMLLM computes its views from pixel_values")
        n = pixel_values.shape[0]
        views = torch.cat([silhouette(pixel_values), colour_grid(pixel_values, self.grid)])
        tokens = super().image_features(views)                 # (2n, M, D)
        return torch.cat([tokens[:n], tokens[n:]], dim=1)      # (n, 2M, D)


class SummedViewsMLLM(TwoViewMLLM):
    """The two views' tokens added, token by token: M image tokens, token i the silhouette's
    token i plus the colour grid's (the projectors keep their grid order, so both are the same
    region of the image). Colour and shape share a token again, but as a sum of two codes each
    computed without the other, so the region's colour is found in the token that holds its
    shape."""

    def __init__(self, config=None, vision=None, lm=None):
        super().__init__(config, vision, lm)
        self.num_image_tokens = self.num_image_tokens // 2

    def image_features(self, pixel_values=None, vision_features=None) -> torch.Tensor:
        tokens = super().image_features(pixel_values, vision_features)   # (n, 2M, D)
        silhouettes, grids = tokens.chunk(2, dim=1)
        return silhouettes + grids                                        # (n, M, D)


VIEWS = {"two": (TwoViewMLLM, "silhouette + colour grid"),
         "sum": (SummedViewsMLLM, "silhouette + colour grid, tokens added")}


def add_views_option(parser) -> None:
    """The `--views one|two|sum` option of the scripts that run stage-2 recipes."""
    parser.add_argument("--views", choices=("one", *VIEWS), default="one",
                        help="'two': the image reaches the LM as a silhouette and a colour grid, "
                             "2M tokens; 'sum': the two views' tokens added, M tokens "
                             "(scripts/two_views.py)")


def use_two_views(views: str = "two") -> dict:
    """Make `minimllm.assistant.main_job` build the model of `VIEWS[views]` ("one": leave it);
    the change, for a run's cache."""
    if views == "one":
        return {}
    import minimllm.assistant

    minimllm.assistant.MLLM, described = VIEWS[views]
    return {"views": described}
