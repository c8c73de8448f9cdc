"""Image datasets: the stylegan2-ada folder/zip format, named tfds datasets, and the train pipeline."""
