"""Colour-word noise for stage 2: does the assistant name unseen colour-shape pairs when the
colour word it has just written stops predicting the shape?

`scripts/compositional_probe.py` found the assistant's image tokens carry the shape of an object
whose (colour, shape) pair it never saw: teacher-forced after "a small blue" (a colour the shape
is seen with) it ranks a red triangle's shape first about as often as a seen pair's, after
"a small red" rarely. The colour word pulls the next word toward the shapes seen in that colour.

`ColourNoiseBatches` removes that pull in training: in the assistant's replies, a colour word
followed by a shape word is replaced, with probability `noise`, by another colour in the *input*
only. The labels keep the true words, so the model still learns to write the right colour; the
shape after it must then come from the image, since the colour before it is sometimes wrong.
(Input-token noise of this kind is word dropout's cousin: Bowman et al. 2016 drop decoder inputs
so the model leans on its conditioning, here the image, rather than on the words before.)
"""
import numpy as np
import torch

from minimllm.assistant import InstructionBatches
from minimllm.data import COLORS, SHAPES


def word_ids(tokenizer, words) -> torch.Tensor:
    """The single token of " word" for each word (the tokenizer has one for every colour and
    shape), refusing a word that splits."""
    ids = [tokenizer(" " + w, add_special_tokens=False).input_ids for w in words]
    if any(len(i) != 1 for i in ids):
        raise ValueError(f"every word must be one token: {dict(zip(words, ids))}")
    return torch.tensor([i[0] for i in ids])


def colour_noise(input_ids: torch.Tensor, labels: torch.Tensor, colours: torch.Tensor,
                 shapes: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """(B, T) ids -> ids with each colour token that carries a label and precedes a shape token
    swapped for another colour with probability `noise`; `labels` untouched."""
    is_colour = torch.isin(input_ids, colours) & (labels != -100)             # (B, T)
    before_shape = torch.zeros_like(is_colour)
    before_shape[:, :-1] = torch.isin(input_ids[:, 1:], shapes)
    flip = is_colour & before_shape & (torch.rand(input_ids.shape, generator=generator) < noise)
    index = (input_ids[..., None] == colours).int().argmax(-1)                # (B, T) colour index
    shift = torch.randint(1, len(colours), input_ids.shape, generator=generator)
    return torch.where(flip, colours[(index + shift) % len(colours)], input_ids)


def noisy_batches(noise: float) -> type:
    """InstructionBatches whose batches carry colour-word noise `noise` (0 = unchanged)."""

    class ColourNoiseBatches(InstructionBatches):
        def __call__(self, step: int) -> dict:
            batch = super().__call__(step)
            tok = self.processor.tokenizer
            generator = torch.Generator().manual_seed(int(np.random.default_rng(
                [self.seed, step, 7]).integers(2**31)))
            batch["input_ids"] = colour_noise(batch["input_ids"], batch["labels"],
                                              word_ids(tok, COLORS), word_ids(tok, SHAPES),
                                              noise, generator)
            return batch

    return ColourNoiseBatches
