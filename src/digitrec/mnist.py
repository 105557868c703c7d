"""MNIST's facts that both flows use: the field, the box, the pixel range, the mean and deviation, the splits."""

from __future__ import annotations

IMAGE_SIZE = 28  # an MNIST digit's field is 28x28 pixels
CLASSES = 10  # the digits 0-9
PIXEL_MAX = 255.0  # uint8 images
WHITE = 255  # the brightest uint8 level
MNIST_MEAN = 0.1307  # mean pixel of the 60k MNIST training images, after /255
MNIST_STD = 0.3081  # their standard deviation, after /255
MNIST_BOX_PX = 20  # an MNIST digit's longer side inside its 28x28 field
MNIST_BOX_FRACTION = MNIST_BOX_PX / IMAGE_SIZE  # the 20x20 box inside the 28x28 field
MNIST_CENTRE_OF_MASS_FRACTION = 0.5  # centre of mass of the first 10k training digits: x 14.00, y 14.00 (± 0.29 px)
TUNING_START = 55_000  # MNIST training images from here on are the reader's tuning digits (never trained on by it)
