"""DICOMweb study store (PACS) helpers: sending studies to Orthanc or any STOW-RS server."""

from bonescan.pacs.upload import (  # noqa: F401
    DEFAULT_URL,
    FileResult,
    UploadReport,
    find_dicom_files,
    is_dicom_file,
    make_client,
    upload_files,
    upload_folder,
)
