"""The GPU decoder (nvJPEG) against the CPU one and TF's colour ops: the same draws give the
same inputs. On the CPU, torchvision decodes with libjpeg-turbo in place of nvJPEG; the
`cuda`-marked test runs nvJPEG itself."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from rethink.training.inception_preprocessing import Draws, draws_of, inception_input
from rethink.training.nvjpeg import decode_batch, distort_color
from rethink.training.settings import RunConfig
from rethink.workflow.launch import train_job
from tests.training.test_inception_preprocessing import tf_distort_color


def jpegs(n: int = 6, size=(150, 200)) -> list[bytes]:
    """Photograph-like JPEGs: smooth colour fields with texture, quality 90."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        pixels = np.asarray(Image.fromarray(coarse).resize(size[::-1], Image.BICUBIC), float)
        pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def test_the_batched_colour_ops_are_tfs():
    rng = np.random.default_rng(1)
    x = rng.random((4, 24, 40, 3)).astype(np.float32)
    colour = torch.tensor([[0.1, 1.4, -0.15, 0.6], [-0.12, 0.5, 0.19, 1.5],
                           [0.0, 1.0, 0.0, 1.0], [0.05, 0.8, -0.01, 1.2]])  # fmt: skip
    ours = distort_color(torch.from_numpy(x).permute(0, 3, 1, 2), colour).permute(0, 2, 3, 1)
    for image, row, got in zip(x, colour.tolist(), ours.numpy(), strict=True):
        np.testing.assert_allclose(got, tf_distort_color(image, row), atol=2e-5)


def decoded_both_ways(device: str, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
    data = jpegs()
    gens = [torch.Generator().manual_seed(s) for s in range(len(data))]
    cpu = torch.stack([inception_input(d, 96, augment, g) for d, g in zip(data, gens, strict=True)])
    gens = [torch.Generator().manual_seed(s) for s in range(len(data))]
    draws = torch.stack(
        [draws_of(d, 96, augment, g).as_tensor() for d, g in zip(data, gens, strict=True)]
    )
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
    return cpu, decode_batch(tensors, draws, 96, torch.device(device)).cpu()


@pytest.mark.parametrize("augment", [True, False])
def test_the_gpu_decoders_inputs_are_the_cpu_decoders(augment):
    """The same draws, on the CPU: within 3 levels in 255 everywhere and half a level on average
    (the CPU decoder rounds the resized box to 8 bits, a quarter of a level on average, which
    the colour factors may scale by up to 1.5 each)."""
    cpu, gpu = decoded_both_ways("cpu", augment)
    difference = (cpu - gpu).abs() * 255 / 2
    assert difference.max() < 3 and difference.mean() < 0.5


@pytest.mark.cuda
def test_nvjpeg_gives_the_cpu_decoders_inputs():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cpu, gpu = decoded_both_ways("cuda", augment=True)
    difference = (cpu - gpu).abs() * 255 / 2
    # nvJPEG's IDCT and upsampling may differ from libjpeg-turbo's by a level or two
    assert difference.mean() < 1 and np.percentile(difference.numpy(), 99) < 4


def test_a_run_with_the_gpu_decoder_reads_bytes_in_its_workers_and_learns(tmp_path):
    """The whole streamed path with jpeg_decoder nvjpeg (on the CPU here: torchvision's
    libjpeg-turbo stands in for nvJPEG): workers send bytes and draws, the training process
    decodes; a 3-class fake ImageNet is learned."""
    from rethink.data.imagenet import convert_imagenet
    from tests.fake_imagenet import write_folders

    write_folders(tmp_path / "copy", train_per_class=8, val_per_class=2)
    convert_imagenet(tmp_path / "copy", tmp_path / "imagenet.h5", {"seed": 0})
    config = RunConfig(
        "mlp1x512", crop_size=32, batch_size=6, max_epochs=12, lr=0.05, device="cpu",
        precision="fp32", eval_batch_size=8, regularizer="augment", jpeg_decoder="nvjpeg",
        loader_workers=1,
    )  # fmt: skip
    summary = train_job(str(tmp_path / "imagenet.h5"), str(tmp_path / "run"), config,
                        str(tmp_path / "log"))  # fmt: skip
    assert summary["test_acc"] > 0.6 and summary["epochs"] <= 12
    assert Draws.of(40, 48, False, None).box == (2, 3, 36, 42)  # the central crop it evaluates
