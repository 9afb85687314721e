"""Episodes on S3: listed, probed and decoded through s3fs from a moto server on loopback."""
import pytest

from audiorole_ray.dummies import tone, write_audio
from audiorole_ray.io.audio import DecodeError, decode, probe
from audiorole_ray.errors import InputError
from audiorole_ray.io.storage import list_episodes, read_json, write_json

moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="tvshows")
    local = tmp_path_factory.mktemp("s3src")
    for rel in ["show/ep1.flac", "show/ep2.m4a"]:
        path = write_audio(local / rel, tone(2.0, sample_rate=44_100), 44_100, 2)
        client.upload_file(str(path), "tvshows", f"series/{rel}")
    client.put_object(Bucket="tvshows", Key="series/show/bad.mp3", Body=b"not audio")
    yield client
    mp.undo()
    server.stop()


def test_list_probe_decode_from_s3(s3):
    eps = list_episodes("s3://tvshows/series")
    assert [(e.episode_id, e.uri) for e in eps] == [
        ("show/bad", "s3://tvshows/series/show/bad.mp3"),
        ("show/ep1", "s3://tvshows/series/show/ep1.flac"),
        ("show/ep2", "s3://tvshows/series/show/ep2.m4a"),
    ]
    assert probe(eps[1].uri).channels == 2
    assert abs(len(decode(eps[2].uri)) / 16_000 - 2.0) < 0.06
    with pytest.raises(DecodeError, match="s3://tvshows/series/show/bad.mp3"):
        decode(eps[0].uri)


def test_s3_wrong_input_and_markers(s3):
    with pytest.raises(InputError, match="does not exist"):
        list_episodes("s3://tvshows/nope")
    write_json("s3://tvshows/out/_state/x.json", {"a": 1})
    assert read_json("s3://tvshows/out/_state/x.json") == {"a": 1}
