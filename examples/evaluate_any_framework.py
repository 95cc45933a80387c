"""Arena.evaluate without transformers: bring answers from anywhere (vLLM, an API, files).

Here three "checkpoints" are plain lists of strings; in practice they would be what
your serving stack returned for the prompt set, in prompt order. Runs in a second on CPU.

    python examples/evaluate_any_framework.py
"""

from optuna_pandalm import Arena, Prompt
from optuna_pandalm.judges import ReferenceJudge

prompts = [
    Prompt("Name the capital of France.", reference="Paris"),
    Prompt("Add 2 and 3.", reference="5"),
    Prompt("Spell 'cat' backwards.", reference="tac"),
    Prompt("What colour is the sky on a clear day?", reference="blue"),
]
answers = {  # (trial, step) -> one answer per prompt
    (0, 1): ["Lyon", "6", "cat", "green"],
    (0, 2): ["Paris", "6", "tac", "green"],
    (1, 1): ["Paris", "5", "tac", "blue"],
}
arena = Arena("sqlite://", "any-framework", ReferenceJudge("token_f1"), prompts, racing=False)
for (trial, step), texts in answers.items():
    result = arena.evaluate(trial, step, texts)  # an int trial number works without Optuna
    opponent = result.opponent.label if result.opponent else "nobody"
    print(
        f"trial {trial} step {step}: score {result.score:+.2f} "
        f"({result.wins}-{result.ties}-{result.losses} vs {opponent})"
    )
best = arena.incumbent()
print(f"incumbent: {best.label}")
