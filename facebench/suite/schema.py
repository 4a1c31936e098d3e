"""Pydantic schema of a suite file: models × devices × protocols (+ gates, report).

Paths are resolved against the suite file's folder (pass ``context={"base_dir": ...}``).
Existence of files is checked in :mod:`facebench.suite.load`, so that every problem is
reported at once with its location.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from facebench.bounds import (
    ID_PATTERN,
    MAX_BATCH,
    MAX_BOOTSTRAP,
    MAX_ID_LENGTH,
    MAX_WORKERS,
    NO_BOOL,
    BatchSize,
    Count,
    EmbeddingSize,
    Real,
    Seed,
    Side,
    ThreadCount,
    Unit,
)
from facebench.crosscheck import CrossChecked, cross_check
from facebench.datasets.specs import (
    IdentityFileDataset,
    IdentityFolderDataset,
    IjbDataset,
    InsightfaceBinDataset,
    LfwPairsDataset,
    PairCsvDataset,
)
from facebench.faces.align import AlignSpec, SimilarityAlign
from facebench.faces.degrade import DegradeSpec
from facebench.faces.detect.base import folder_files
from facebench.gates.spec import Gate
from facebench.paths import SuitePath

Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]

#: Wall-clock limit of a cell (seconds): the suite's default, and the largest allowed.
DEFAULT_CELL_TIMEOUT_S = 7200.0
MAX_CELL_TIMEOUT_S = 7 * 24 * 3600.0
CellTimeout = Annotated[float, Field(ge=1, le=MAX_CELL_TIMEOUT_S, allow_inf_nan=False), NO_BOOL]
PROTOCOL_TIMEOUT = ("Wall-clock limit of each cell of this protocol in seconds; default: the "
                    "suite's cell_timeout_s.")
#: A protocol's selection of model or device ids: ``None`` (left out) selects all; an empty
#: list would select no cell, so it is refused.
IdSelection = Annotated[list[str], Field(min_length=1)] | None
MODELS_OF_PROTOCOL = "Model ids this protocol runs (at least one); default: every model."
DEVICES_OF_PROTOCOL = "Device ids this protocol runs on (at least one); default: every device."


class Strict(CrossChecked):
    model_config = ConfigDict(extra="forbid")


def _blank_is_none(value: Any) -> Any:
    """``weights: ${VAR:-}`` with VAR unset means no file (zoo models: random init)."""
    return None if isinstance(value, str) and not value.strip() else value


#: An optional path where a blank string means none.
OptionalPath = Annotated[SuitePath | None, BeforeValidator(_blank_is_none)]


def _scalar_or_channels(value: Any) -> str:
    return "per_channel" if isinstance(value, list | tuple) else "one_value"


PixelMean = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False), NO_BOOL]
PixelStd = Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False), NO_BOOL]
#: One value, or one per channel (in the model's colour order); errors name only the form given.
MeanSpec = Annotated[
    Annotated[PixelMean, Tag("one_value")]
    | Annotated[tuple[PixelMean, PixelMean, PixelMean], Tag("per_channel")],
    Discriminator(_scalar_or_channels),
]
StdSpec = Annotated[
    Annotated[PixelStd, Tag("one_value")]
    | Annotated[tuple[PixelStd, PixelStd, PixelStd], Tag("per_channel")],
    Discriminator(_scalar_or_channels),
]
NORMALIZE_TAGS = ("one_value", "per_channel")


class Preprocess(Strict):
    """How an aligned crop becomes a model input (the suite's ``normalize:`` block; also read
    as ``preprocess:``): resize to ``input_size``, channel order, then ``(x - mean) / std`` with
    scalar or per-channel (model colour order) values in pixel units, or ``per_image``
    standardisation (FaceNet's prewhiten: each image's own mean and std, the std at least
    1/sqrt(pixels)); ``layout`` NCHW or NHWC; ``flip`` overrides the protocol's flip test."""

    color: Literal["RGB", "BGR"] = "RGB"
    mean: MeanSpec = Field(default=127.5, description="Pixel units (0–255), one value "
                                  "or one per channel in the model's colour order.")
    std: StdSpec = Field(default=127.5, description="Pixel units; > 0; one value or "
                                 "one per channel.")
    per_image: bool = Field(default=False, description="Standardise each image by its own mean "
                            "and std instead of mean/std.")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    input_size: tuple[Side, Side] = Field(default=(112, 112), description="(w, h) in pixels.")
    flip: bool | None = Field(default=None, description="Flip test for this model: embed the "
                              "image and its mirror and add them; default: the protocol's flip.")


class Reference(Strict):
    """A published figure for this model, shown beside the measured one in the report's paper
    table (data, not code: the suite says where it comes from)."""

    lfw_accuracy: Unit | None = Field(default=None, description="Published LFW View 2 "
                                      "10-fold accuracy as a fraction (0.9905 for 99.05 %).")
    source: str = Field(min_length=1, description="Where the figure is published (paper, "
                        "model card, URL).")
    note: str = Field(default="", description="Conditions of the published figure (training "
                      "data, alignment, flip test) when they differ from this suite's.")


class ModelSpec(Strict):
    """A model: a file (ONNX, TorchScript) or a zoo architecture with optional weights."""

    id: Id
    source: Literal["onnx", "torchscript", "zoo", "dlib"]
    path: OptionalPath = None
    arch: str | None = None
    weights: OptionalPath = None
    embedding_size: EmbeddingSize | None = None
    align: AlignSpec = Field(
        default=SimilarityAlign(), description="How a detected face becomes the crop this model "
        "was trained on: similarity (5-point template; default ArcFace), box_crop (detector box "
        "+ margin), dlib_chip, or none (pre-aligned input).")
    preprocess: Preprocess = Field(
        default=Preprocess(), validation_alias=AliasChoices("normalize", "preprocess"),
        description="Crop → model input (``normalize:``; ``preprocess:`` is the older name).")
    optional: bool = Field(
        default=False,
        description="When its file is missing, skip this model's cells with a note instead of "
        "failing validation.",
    )
    reference: Reference | None = Field(
        default=None, description="Published accuracy of this model, for the paper table.")
    description: str = ""

    @field_validator("weights")
    @classmethod
    def _zoo_weights(cls, value: Any, info: ValidationInfo) -> Any:
        source = info.data.get("source")
        if value is not None and source not in (None, "zoo"):
            raise ValueError(f"weights apply to zoo models only; a '{source}' model is its "
                             "'path' file (remove 'weights')")
        return value

    @cross_check("source", "path", "arch")
    def _source_fields(self) -> None:
        if self.source in ("onnx", "torchscript") and self.path is None:
            raise ValueError(f"source '{self.source}' needs 'path' (the model file)")
        if self.source == "zoo" and not self.arch:
            raise ValueError("source 'zoo' needs 'arch' (see `facebench models`)")

    def input_paths(self) -> list[Path]:
        """The files this model is read from (``--resume``'s key): its file, its weights."""
        return [p for p in (self.path, self.weights) if p is not None]


class Threads(Strict):
    intra_op: ThreadCount | None = None
    inter_op: ThreadCount | None = None


Precision = Literal["fp32", "fp16", "int8"]


class QuantizationSpec(Strict):
    """How ``precision: int8`` quantizes a model (onnxruntime.quantization): ``static`` QDQ
    with activation ranges calibrated on a seeded sample of aligned crops, or ``dynamic``
    (weights int8, activations quantized at run time; needs no calibration data)."""

    mode: Literal["static", "dynamic"] = "static"
    per_channel: bool = Field(default=True, description="One weight scale per output channel.")
    calibration_images: Count = Field(
        default=200, ge=1, le=100_000, description="Images drawn (seeded, without replacement) "
        "from the calibration protocol's dataset; their aligned crops calibrate activations.")
    calibrate_on: str | None = Field(
        default=None, description="Protocol id whose images calibrate; default: the cell's own "
        "protocol, and for efficiency cells the first verification or identification protocol "
        "that runs the same model on this device.")
    seed: Seed = 0


class DeviceSpec(Strict):
    """An engine on a device, with its thread settings, numeric precision and batch sizes."""

    id: Id
    engine: Literal["torch", "torch_compile", "onnxruntime", "dlib"]
    device: Literal["cpu", "cuda"] = "cpu"
    providers: list[Literal["cpu", "cuda", "tensorrt"]] = []
    threads: Threads = Threads()
    precision: Precision = Field(
        default="fp32", description="fp32; fp16 (CUDA: half weights and compute, float32 I/O); "
        "int8 (onnxruntime: the model quantized by onnxruntime.quantization, see quantization). "
        "A variant a device cannot run is skipped with the reason.")
    fp16: bool = Field(default=False, description="Older spelling of precision: fp16.")
    quantization: QuantizationSpec = QuantizationSpec()
    batch_sizes: list[BatchSize] = Field(default=[1], min_length=1)
    label: str | None = Field(
        default=None, description="Cluster resource label: cells run only where it exists."
    )

    @cross_check("fp16", "precision")
    def _fp16_int8(self) -> None:
        if self.fp16 and self.precision == "int8":
            raise ValueError("fp16: true contradicts precision: int8; keep precision only")

    @model_validator(mode="after")
    def _precision(self) -> DeviceSpec:
        """``fp16: true`` is ``precision: fp16``; afterwards ``fp16`` mirrors ``precision``."""
        if self.fp16:
            self.precision = "fp16"
        self.fp16 = self.precision == "fp16"
        return self


DATASET_KINDS = ("lfw_pairs", "pair_csv", "insightface_bin", "identity_folder", "identity_file",
                 "ijb")


def _dataset_kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("kind", "lfw_pairs")
    else:
        kind = getattr(value, "kind", None)
    return kind if kind in DATASET_KINDS else "unknown"


DatasetSpec = Annotated[
    Annotated[LfwPairsDataset, Tag("lfw_pairs")]
    | Annotated[PairCsvDataset, Tag("pair_csv")]
    | Annotated[InsightfaceBinDataset, Tag("insightface_bin")]
    | Annotated[IdentityFolderDataset, Tag("identity_folder")]
    | Annotated[IdentityFileDataset, Tag("identity_file")]
    | Annotated[IjbDataset, Tag("ijb")],
    Discriminator(
        _dataset_kind,
        custom_error_type="dataset_kind",
        custom_error_message="unknown dataset kind; use one of " + ", ".join(DATASET_KINDS),
    ),
]


class DetectorSpec(Strict):
    """Five-point detector. ``select`` picks one face when several are found; the default,
    ``closest_to_center``, suits datasets whose subject is centred (LFW, CFP, AgeDB crops)."""

    name: Literal["yunet", "retinaface", "mtcnn", "dlib", "none"] = "yunet"
    model: OptionalPath = Field(
        default=None, description="Weights file (yunet: .onnx, retinaface: .pth); for mtcnn a "
        "folder with pnet.pt, rnet.pt, onet.pt (default: the installed facenet-pytorch's); for "
        "dlib a folder with shape_predictor_5_face_landmarks.dat (default: "
        "face_recognition_models').")
    score_threshold: Unit | None = None
    select: Literal["highest_score", "largest", "closest_to_center"] = "closest_to_center"

    @cross_check("name", "model")
    def _model_needed(self) -> None:
        if self.name not in ("none", "mtcnn", "dlib") and self.model is None:
            raise ValueError(f"detector '{self.name}' needs 'model' (its weights file)")

    def input_paths(self) -> list[Path]:
        """The weight files this detector reads (``--resume``'s key): ``model``, or for a
        folder detector the files it reads there. An installed package's default weights
        are not listed."""
        if self.model is None or self.name == "none":
            return []
        names = folder_files(self.name)
        if names is None:
            return [self.model]
        folder = self.model.parent if self.model.is_file() else self.model
        return [folder / name for name in names]


def _no_detector_for_given_landmarks(proto: Any) -> None:
    """An ijb dataset gives every face's landmarks: a detector would be ignored, so refuse it."""
    if proto.dataset.kind == "ijb" and proto.detector.name != "none":
        raise ValueError(f"detector '{proto.detector.name}' with an ijb dataset: its faces come "
                         "with five landmarks and are aligned by each model's own align: from "
                         "them; remove 'detector'")


#: The most impostor pairs an exhaustive protocol may resample with the pair bootstrap.
MAX_PAIR_BOOTSTRAP_IMPOSTORS = 200_000


class VerificationProtocol(Strict):
    """Pair verification: detect → align → embed (flip-sum) → cosine → metrics. On an ijb
    dataset the pairs are template pairs (faces aligned from their given landmarks, pooled per
    template) and one threshold serves all pairs (no folds)."""

    id: Id
    kind: Literal["verification"]
    dataset: DatasetSpec
    detector: DetectorSpec = DetectorSpec(name="none")
    align_size: Side | None = Field(
        default=None, description="Output size of the aligned crop; default: model input."
    )
    flip: bool = True
    fta_policy: Literal["reject"] = "reject"
    far_targets: list[Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]] = [
        1e-1, 1e-2, 1e-3, 1e-4]
    bootstrap: Count = Field(default=0, ge=0, le=MAX_BOOTSTRAP)
    bootstrap_method: Literal["identity", "pair"] = Field(
        default="identity", description="How bootstrap replicates resample: identity (an "
        "identity drawn brings all its pairs; the default where the dataset names each "
        "image's identity, else pair) or pair (pairs drawn independently).")
    batch_size: Count | None = Field(
        default=None, gt=0, le=MAX_BATCH, description="Crops per inference call (doubled by "
        "the flip test); default: the device's smallest batch size on CPU (small batches are "
        "fastest per image there), its largest on CUDA.")
    cache_embeddings: bool = Field(
        default=True, description="Reuse embeddings of identical work (model, data, settings).")
    shard_size: Annotated[int, Field(gt=0, le=10_000_000), NO_BOOL] | None = Field(
        default=None, description="Embed in shards of this many images "
        "(Ray tasks under --executor ray); the embeddings are those of an unsharded run.")
    workers: Count = Field(default=2, ge=1, le=MAX_WORKERS,
                           description="Processes that detect, align (and on CPU embed).")
    requires_weights: bool = Field(
        default=False, description="Skip zoo models without trained weights (random init) "
        "with a note instead of measuring chance-level accuracy.")
    optional: bool = Field(
        default=False, description="When the dataset is missing, skip with a note, not an error."
    )
    cell_timeout_s: CellTimeout | None = Field(default=None, description=PROTOCOL_TIMEOUT)
    models: IdSelection = Field(default=None, description=MODELS_OF_PROTOCOL)
    devices: IdSelection = Field(default=None, description=DEVICES_OF_PROTOCOL)
    degrade: DegradeSpec | None = Field(
        default=None, description="Robustness: run the protocol again under each level of "
        "these corruptions, each level its own protocol '<id>+<corruption>-<level>' beside the "
        "clean one (docs/robustness.md).")

    @cross_check("dataset", "detector")
    def _given_landmarks(self) -> None:
        _no_detector_for_given_landmarks(self)

    @cross_check("dataset", "bootstrap", "bootstrap_method")
    def _pair_bootstrap_size(self) -> None:
        sample = getattr(self.dataset, "impostor_sample", None)
        if (getattr(self.dataset, "pairs", "drawn") == "all" and self.bootstrap
                and self.bootstrap_method == "pair"
                and (sample is None or sample > MAX_PAIR_BOOTSTRAP_IMPOSTORS)):
            raise ValueError(
                "bootstrap_method: pair weighs every pair in every replicate, too slow for an "
                "exhaustive protocol; use bootstrap_method: identity (the default) or sample "
                f"at most {MAX_PAIR_BOOTSTRAP_IMPOSTORS:,} impostors (impostor_sample)")

    def input_paths(self) -> list[Path]:
        """What a cell of this protocol reads besides its model (``--resume``'s key)."""
        return [*self.dataset.input_paths(), *self.detector.input_paths()]


class EfficiencyProtocol(Strict):
    """Cost probes: params, compute, cold start, latency by batch size, peak memory."""

    id: Id
    kind: Literal["efficiency"]
    warmup: Count = Field(default=10, ge=0, le=10_000)
    min_iters: Count = Field(default=50, ge=1, le=100_000)
    min_seconds: Real = Field(default=2.0, ge=0, le=3600)
    batch_sizes: list[BatchSize] | None = Field(default=None, min_length=1)
    interleave: Annotated[bool, Field(strict=True)] = Field(
        default=False, description="After the cells, time the protocol's models again in "
        "alternating rounds (A B C A B C …) in one process, per device and batch size, and "
        "report each model's p50 relative to the protocol's first model (latency.b{B}."
        "p50_vs_ref, with a CI over rounds): ratios that hold on a busy machine.")
    rounds: Annotated[int, Field(ge=6, le=1000), NO_BOOL] = Field(
        default=6, description="Interleaved rounds (at least 6: the fewest with a 95 % "
        "interval for the median ratio); each round times every model for min_seconds / "
        "rounds.")
    cell_timeout_s: CellTimeout | None = Field(default=None, description=PROTOCOL_TIMEOUT)
    models: IdSelection = Field(default=None, description=MODELS_OF_PROTOCOL)
    devices: IdSelection = Field(default=None, description=DEVICES_OF_PROTOCOL)

    def input_paths(self) -> list[Path]:
        """An efficiency cell reads its model only."""
        return []


class SearchOptions(Strict):
    """How probes are searched against a gallery (exact inner product either way)."""

    backend: Literal["auto", "numpy", "faiss"] = Field(
        default="auto", description="auto: faiss when installed (facebench[search]; faster by "
        "measurement, benchmarks/bench_search.py), else numpy.")
    chunk_rows: Annotated[int, Field(ge=1024, le=10_000_000), NO_BOOL] = Field(
        default=65536, description="Gallery rows searched at a time (bounds memory).")


FpirTarget = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class IdentificationProtocol(Strict):
    """1:N identification: closed-set rank-k and CMC over the mated probes, open-set FNIR at
    FPIR over mated and non-mated searches (docs/identification.md).

    Identity datasets: each enrolled identity's first ``gallery_images`` images form the
    gallery, the rest are mated probes; an ``unenrolled`` fraction of identities (seeded) gives
    non-mated probes; ``distractors`` folders add gallery-only images. ijb datasets: the 1:N
    gallery sets and probe templates the dataset lists (each probe searched against each
    gallery set; a probe whose subject is not in a set is non-mated there)."""

    id: Id
    kind: Literal["identification"]
    dataset: Annotated[IdentityFolderDataset | IdentityFileDataset | IjbDataset,
                       Field(discriminator="kind")]
    detector: DetectorSpec = DetectorSpec(name="none")
    align_size: Side | None = None
    flip: bool = True
    ranks: list[Annotated[int, Field(gt=0, le=10_000), NO_BOOL]] = [1, 5, 10]
    max_rank: Count = Field(default=20, gt=0, le=10_000)
    fpir_targets: list[FpirTarget] = Field(
        default=[0.01, 0.1], description="Open-set targets: FNIR at these FPIRs.")
    open_set_rank: Count = Field(
        default=1, gt=0, le=10_000, description="Open-set hit: the mate within this rank "
        "and at or above the threshold (NIST FRVT reports rank 1).")
    gallery_images: Count = Field(
        default=1, ge=1, le=100_000, description="Identity datasets: images per enrolled "
        "identity in the gallery (first in file order).")
    unenrolled: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False), NO_BOOL] = Field(
        default=0.0, description="Identity datasets: fraction of identities (seeded) kept out "
        "of the gallery; their images are non-mated probes (open-set).")
    distractors: list[SuitePath] = Field(
        default=[], description="Identity datasets: folders of images added to the gallery only, "
        "each image its own identity (MegaFace-style distractors).")
    seed: Seed = 0
    search: SearchOptions = SearchOptions()
    batch_size: Count | None = Field(default=None, gt=0, le=MAX_BATCH)
    cache_embeddings: bool = True
    workers: Count = Field(default=2, ge=1, le=MAX_WORKERS)
    requires_weights: bool = False
    optional: bool = False
    cell_timeout_s: CellTimeout | None = Field(default=None, description=PROTOCOL_TIMEOUT)
    models: IdSelection = Field(default=None, description=MODELS_OF_PROTOCOL)
    devices: IdSelection = Field(default=None, description=DEVICES_OF_PROTOCOL)

    @cross_check("dataset", "detector")
    def _given_landmarks(self) -> None:
        _no_detector_for_given_landmarks(self)

    @cross_check("dataset", "gallery_images", "unenrolled", "distractors")
    def _split_fields(self) -> None:
        if self.dataset.kind == "ijb":
            used = [k for k, off in (("gallery_images", 1), ("unenrolled", 0.0),
                                     ("distractors", [])) if getattr(self, k) != off]
            if used:
                raise ValueError(f"{', '.join(used)}: for identity datasets only; an ijb "
                                 "dataset lists its own gallery sets and probes")

    def input_paths(self) -> list[Path]:
        """What a cell of this protocol reads besides its model (``--resume``'s key); a
        distractor folder by its listing."""
        return [*self.dataset.input_paths(), *self.detector.input_paths(), *self.distractors]


ProtocolSpec = Annotated[
    VerificationProtocol | EfficiencyProtocol | IdentificationProtocol,
    Field(discriminator="kind"),
]


class PublishedRow(Strict):
    """One row of a published results table (e.g. the source paper's Table 1), shown in the
    paper table beside the measured rows and labelled with its test set and training data.
    Fractions in [0, 1]; a column the publication does not give is left out."""

    label: str = Field(min_length=1, description="Row label, e.g. 'MobileFaceNet (paper)'.")
    model: str | None = Field(default=None, description="Suite model id this row corresponds "
                              "to (its measured row is shown next to it), if any.")
    test_set: str = Field(min_length=1, description="What the publication tested on.")
    training: str = Field(default="", description="Training data of the published model.")
    source: str = Field(min_length=1, description="Citation or URL.")
    accuracy: Unit | None = None
    precision: Unit | None = None
    recall: Unit | None = None
    specificity: Unit | None = None
    f1: Unit | None = None


class PaperTable(Strict):
    """The report's paper table: per model the five confusion columns on its verification
    protocol beside published rows and each model's published LFW accuracy, plus
    accuracy-vs-cost Pareto figures."""

    protocols: list[str] | None = Field(
        default=None, description="Verification protocol ids of the measured rows (a model "
        "appears once, from the first of these that ran it); default: every verification "
        "protocol of the suite, in order.")
    published: list[PublishedRow] = []


class ReportOptions(Strict):
    title: str | None = None
    formats: list[Literal["html", "md"]] = ["html", "md"]
    paper_table: PaperTable | None = Field(
        default=None, description="Add the paper table section (off unless given).")


class Suite(Strict):
    """A benchmark suite: the matrix of models × devices × protocols."""

    name: Id
    description: str = ""
    models: list[ModelSpec] = Field(min_length=1)
    devices: list[DeviceSpec] = Field(min_length=1)
    protocols: list[ProtocolSpec] = Field(min_length=1)
    gates: list[Gate] = Field(
        default=[], description="CI thresholds, e.g. 'lfw.accuracy >= 0.985' (docs/ci.md).")
    report: ReportOptions = ReportOptions()
    cache_dir: SuitePath | None = Field(
        default=None, description="Alignment/export cache; default $FACEBENCH_CACHE or ~/.cache."
    )
    cell_timeout_s: CellTimeout = Field(
        default=DEFAULT_CELL_TIMEOUT_S, description="Wall-clock limit of each cell in seconds: "
        "a cell still running then is killed and recorded as failed ('timed out after N s'). "
        "A protocol's cell_timeout_s overrides it.")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of suite files (for editors and CI linting)."""
    return Suite.model_json_schema()
