"""What runs inside Ray Train workers: config, data, model + LoRA, losses, the train loop, the evaluation stage."""

import time

IMPORTED_AT = time.perf_counter()  # a worker's ``imports`` phase starts here (``trainables.train_loop``)
