"""Fuzzing of the .tflite path: a seeded mutator (:mod:`.mutate`) and a crash-isolating runner
(:mod:`.runner`) shared by the bounded test in ``make test`` and the long ``make fuzz`` run."""
