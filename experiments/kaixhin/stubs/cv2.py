"""Stand-in for OpenCV: Kaixhin/PlaNet's symbolic mode only calls destroyAllWindows."""

INTER_LINEAR = 1


def destroyAllWindows():  # noqa: N802 (OpenCV's name)
    pass


def _unavailable(*args, **kwargs):
    raise RuntimeError("cv2 stand-in: not available in --symbolic-env mode")


resize = imshow = waitKey = VideoWriter = VideoWriter_fourcc = _unavailable
