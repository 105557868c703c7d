"""MNIST's facts that both flows use: the field, the box, the pixel range, the mean and deviation."""

from __future__ import annotations

PIXEL_MAX = 255.0  # uint8 images


MNIST_MEAN = 0.1307  # mean pixel of the 60k MNIST training images, after /255


MNIST_STD = 0.3081  # their standard deviation, after /255


MNIST_BOX_FRACTION = 20 / 28  # the 20x20 box inside the 28x28 field


MNIST_CENTRE_OF_MASS_FRACTION = 0.5  # centre of mass of the first 10k training digits: x 14.00, y 14.00 (± 0.29 px)
