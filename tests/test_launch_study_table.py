"""launch/study_table.py: the studies' table from run folders (metrics.jsonl, diffusion_history.json)."""
import importlib.util
import json
import pathlib

LAUNCH = pathlib.Path(__file__).resolve().parents[1] / 'launch'


def load_module():
  spec = importlib.util.spec_from_file_location('study_table', LAUNCH / 'study_table.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def fake_run(path, fd, kid, gaps, final_t=None):
  path.mkdir()
  lines = [{'step': 5, 'results': {'fd10k-clf': 99.0}},
           {'step': 10, 'results': {'fd10k-clf': fd, 'kid10k-clf': kid}}]
  (path / 'metrics.jsonl').write_text(''.join(json.dumps(line) + '\n' for line in lines))
  history = [dict({'step': i, 'score_real': g, 'score_fake': 0.0}, **({'T': final_t} if final_t
             else {})) for i, g in enumerate(gaps)]
  (path / 'diffusion_history.json').write_text(json.dumps(history))
  return str(path)


def test_table_rows_means_seeds_and_missing_runs(tmp_path, capsys):
  table = load_module().table
  a = fake_run(tmp_path / 'a0', 10.0, 0.002, [0.5] + [1.0] * 9 + [3.0])
  b = fake_run(tmp_path / 'a1', 12.0, 0.004, [0.5] + [1.0] * 9 + [5.0])
  c = fake_run(tmp_path / 'd0', 8.0, 0.001, [0.2] * 11, final_t=42)
  text = table([f'GAN={a},{b}', f'Diffusion-GAN={c},{tmp_path / "absent"}'])
  rows = text.splitlines()
  assert rows[0].startswith('| row | seeds | fd10k-clf')
  assert rows[2] == '| GAN | 2 | 11 (10, 12) | 3 (2, 4) | - | 1 (1, 1) / 4 (3, 5) |'
  assert rows[3] == '| Diffusion-GAN | 2 | 8 | 1 | 42 | 0.2 / 0.2 |'
  assert 'absent' in capsys.readouterr().err


def test_score_gap_plot_smooths_each_run_and_skips_empty_ones(tmp_path, capsys):
  spec = importlib.util.spec_from_file_location('score_gap_plot', LAUNCH / 'score_gap_plot.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  run = fake_run(tmp_path / 'r', 1.0, 0.001, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
  steps, gaps = module.curve(pathlib.Path(run), window=3)
  assert steps == list(range(7)) and gaps == [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0]
  out = tmp_path / 'gap.png'
  module.main([str(out), f'A={run}', f'B={tmp_path / "absent"}'])
  assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert 'no scores logged' in capsys.readouterr().err


def test_grid_strip_puts_reals_and_newest_fakes_side_by_side(tmp_path):
  import numpy as np
  import pytest
  from PIL import Image
  spec = importlib.util.spec_from_file_location('grid_strip', LAUNCH / 'grid_strip.py')
  grid_strip = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(grid_strip)
  run = tmp_path / 'run'
  run.mkdir()
  Image.new('RGB', (96, 96), (255, 0, 0)).save(tmp_path / 'reals.png')
  Image.new('RGB', (96, 96), (0, 0, 255)).save(run / 'fakes000001.png')
  Image.new('RGB', (96, 96), (0, 255, 0)).save(run / 'fakes000002.png')   # the newest
  out = tmp_path / 'strip.png'
  grid_strip.main([str(out), str(tmp_path / 'reals.png'), f'GAN={run}', '--rows=2', '--tile=32'])
  image = np.asarray(Image.open(out))
  assert image.shape == (64 + grid_strip.LABEL_HEIGHT, 2 * 64 + 6, 3)
  assert tuple(image[40, 10]) == (255, 0, 0) and tuple(image[40, 64 + 6 + 10]) == (0, 255, 0)
  with pytest.raises(SystemExit, match='smaller than'):
    grid_strip.main([str(out), str(tmp_path / 'reals.png'), '--rows=4'])
  with pytest.raises(SystemExit, match='no fakes'):
    grid_strip.main([str(out), f'X={tmp_path}'])
