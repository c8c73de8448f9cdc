"""Plots D's real/fake score gap over training for several runs (their diffusion_history.json).

    python launch/score_gap_plot.py out.png "Diffusion-InsGen=runs/a" "InsGen=runs/b"

The gap of each logged step is smoothed over `--window` (default 5) logged rows. Used by
launch/insgen_cifar10_1k.sh.
"""
import math
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from dgan_jax import plots  # noqa: E402
import study_table  # noqa: E402


def curve(run: pathlib.Path, window: int = 5):
  """(steps, gaps) of a run, each gap the mean over the last `window` logged rows."""
  rows = [r for r in study_table.history(run)
          if 'score_real' in r and math.isfinite(r['score_real'] - r['score_fake'])]
  gaps = [r['score_real'] - r['score_fake'] for r in rows]
  smooth = [sum(gaps[max(0, i - window + 1):i + 1]) / len(gaps[max(0, i - window + 1):i + 1])
            for i in range(len(gaps))]
  return [r['step'] for r in rows], smooth


def main(argv):
  if len(argv) < 2:
    sys.exit(__doc__)
  curves = {}
  for spec in argv[1:]:
    label, _, run = spec.partition('=')
    steps, gaps = curve(pathlib.Path(run))
    if not steps:
      print(f'score_gap_plot: no scores logged in {run}', file=sys.stderr)
      continue
    curves[label] = (steps, gaps)
  plots.plot_score_gaps(argv[0], curves)
  print(f'wrote {argv[0]}')


if __name__ == '__main__':
  main(sys.argv[1:])
