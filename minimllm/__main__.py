"""`python -m minimllm ...`: the `minimllm` command (hand-written), also what
`torchrun -m minimllm ...` starts in every process."""

import sys

from minimllm.cli import main

if __name__ == "__main__":
    sys.exit(main())
