"""A local GCS JSON API server for tests: gcp-storage-emulator, with object
downloads that also send `x-goog-generation` / `x-goog-metageneration`
(real GCS sends them; TensorStore's OCDBT driver needs them to read a
manifest back while writing a checkpoint).

  python tests/gcs_server.py PORT
"""
import sys

from gcp_storage_emulator.handlers import objects

_download = objects.download


def _download_with_generation(request, response, storage, *args, **kwargs):
  try:
    obj = storage.get_file_obj(request.params["bucket_name"],
                               request.params["object_id"])
    response["x-goog-generation"] = str(obj.get("generation", "1"))
    response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))
  except Exception:  # pylint: disable=broad-except  (404: the handler says)
    pass
  return _download(request, response, storage, *args, **kwargs)


objects.download = _download_with_generation

from gcp_storage_emulator.server import create_server  # pylint: disable=g-import-not-at-top,wrong-import-position

if __name__ == "__main__":
  server = create_server("127.0.0.1", int(sys.argv[1]), in_memory=True)
  server.run()
