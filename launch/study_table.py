"""Prints a study's table (markdown) from its run folders: the last fd10k-clf / kid10k-clf of each
run (metrics.jsonl), their mean and spread over seeds, the final diffusion level and D's real/fake
score gap (diffusion_history.json) early and late in the run.

    python launch/study_table.py "DCGAN=runs/a_s0,runs/a_s1" "Diffusion-DCGAN=runs/b_s0,runs/b_s1"

Used by launch/study_small_gans.sh and launch/study_limited_data.sh. A missing or unfinished run
shows as '-' (and is named on stderr) rather than stopping the table.
"""
import json
import math
import pathlib
import sys

METRICS = ('fd10k-clf', 'kid10k-clf')


def last_results(run: pathlib.Path) -> dict:
  path = run / 'metrics.jsonl'
  if not path.exists():
    return {}
  lines = [line for line in path.read_text().splitlines() if line.strip()]
  return json.loads(lines[-1])['results'] if lines else {}


def history(run: pathlib.Path) -> list:
  path = run / 'diffusion_history.json'
  return json.loads(path.read_text()) if path.exists() else []


def spread(values: list) -> str:
  """'mean (v1, v2, ...)' of the finite values, or '-'."""
  values = [v for v in values if v is not None and math.isfinite(v)]
  if not values:
    return '-'
  mean = sum(values) / len(values)
  if len(values) == 1:
    return f'{mean:.4g}'
  return f'{mean:.4g} ({", ".join(f"{v:.4g}" for v in values)})'


def score_gap(rows: list, fraction: float):
  """D's mean real minus fake logit at the logged step nearest `fraction` of the run."""
  rows = [r for r in rows if 'score_real' in r and math.isfinite(r['score_real'])]
  if not rows:
    return None
  row = rows[min(len(rows) - 1, int(round(fraction * (len(rows) - 1))))]
  return row['score_real'] - row['score_fake']


def table(specs: list) -> str:
  lines = ['| row | seeds | fd10k-clf mean (per seed) | kid10k-clf x 1e3 mean (per seed) | '
           'final T | D score gap real-fake at 10% / end |',
           '|---|---|---|---|---|---|']
  for spec in specs:
    label, _, dirs = spec.partition('=')
    runs = [pathlib.Path(d) for d in dirs.split(',') if d]
    results = [last_results(r) for r in runs]
    for run, res in zip(runs, results):
      if not res:
        print(f'study_table: no metrics in {run} (not run, unfinished, or no classifier)',
              file=sys.stderr)
    fd = [res.get(METRICS[0]) for res in results]
    kid = [res[METRICS[1]] * 1e3 if METRICS[1] in res else None for res in results]
    hists = [history(r) for r in runs]
    final_t = [h[-1]['T'] for h in hists if h and 'T' in h[-1]]
    early = spread([score_gap(h, 0.1) for h in hists])
    late = spread([score_gap(h, 1.0) for h in hists])
    t_text = ', '.join(str(t) for t in final_t) if final_t else '-'
    lines.append(f'| {label} | {len(runs)} | {spread(fd)} | {spread(kid)} | {t_text} | '
                 f'{early} / {late} |')
  return '\n'.join(lines)


if __name__ == '__main__':
  if len(sys.argv) < 2:
    sys.exit(__doc__)
  print(table(sys.argv[1:]))
