"""The face-image chain: read and decode an image, detect faces, align one, cache the crop."""
