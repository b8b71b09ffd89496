"""The `--views` option of the stage-2 scripts, and the summed-views ablation of chapter 07's
two-view model (`minimllm.views.TwoViewMLLM`, the course's recipe since it met the assistant's
targets on unseen colour-shape pairs), and the option of its colour-view dropout
(`AssistantConfig.colour_dropout`).

    python scripts/assistant_sweep.py --name two-views --views two \
        --cache data/checkpoints/assistant_sweeps/views.json --seeds 0 1   # the course's recipe
    python scripts/assistant_sweep.py --name one-view --views one --seeds 0 1   # the image itself
    python scripts/assistant_sweep.py --name summed-views --views sum \
        --cache data/checkpoints/assistant_sweeps/views.json --seeds 0 1   # M tokens, added
    python scripts/assistant_sweep.py --name colour-dropout --views drop \
        --cache data/checkpoints/assistant_sweeps/views_dropout.json --seeds 0 1
"""

import torch

from minimllm.views import TwoViewConfig, TwoViewMLLM


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


def add_views_option(parser) -> None:
    """The `--views one|two|sum|drop` option of the scripts that run stage-2 recipes."""
    parser.add_argument("--views", choices=("one", "two", "sum", "drop"), default=None,
                        help="'one': the image itself; 'two': a silhouette and a colour grid, "
                             "2M tokens (AssistantConfig's default); 'sum': the two views' tokens "
                             "added, M tokens; 'drop': two views, 30%% of the training images with "
                             "a blank colour grid (AssistantConfig.colour_dropout)")


def use_views(views: str | None) -> dict:
    """The `AssistantConfig` change that `--views` asks for ({} for the default); "sum" first
    registers `SummedViewsMLLM` as a way of showing the image (`minimllm.assistant.VIEWS`)."""
    if views is None:
        return {}
    if views == "drop":
        return {"views": "two", "colour_dropout": 0.3}
    if views == "sum":
        import minimllm.assistant

        minimllm.assistant.VIEWS[views] = (SummedViewsMLLM, TwoViewConfig)
    return {"views": views}
