"""PyKMIP 0.10's Re-key and Check against the server under test.

pykmip-server implements neither (it answers OperationNotSupported), so
these run against kmipd only.
"""

import pytest

from kmip.core import enums
from kmip.pie import exceptions as pie_exc

from test_pykmip import client, connect  # noqa: F401 (fixtures)

AES = enums.CryptographicAlgorithm.AES
MASK = enums.CryptographicUsageMask


@pytest.fixture(autouse=True)
def kmipd_only(kind):
    if kind == "pykmip":
        pytest.skip("pykmip-server implements neither Re-key nor Check")


def _names(client, uid):
    _, attrs = client.get_attributes(uid, ["Name"])
    return [a.attribute_value.name_value.value for a in attrs]


def _state(client, uid):
    _, attrs = client.get_attributes(uid, ["State"])
    return attrs[0].attribute_value.value


def test_rekey_moves_name_and_makes_new_material(client):
    uid = client.create(AES, 256, name="pykmip-rekey",
                        cryptographic_usage_mask=[MASK.ENCRYPT, MASK.DECRYPT])
    client.activate(uid)
    old = client.get(uid).value
    new_uid = client.rekey(uid=uid, offset=0)
    assert new_uid != uid
    new = client.get(new_uid)
    assert len(new.value) == 32 and new.value != old
    assert _names(client, new_uid) == ["pykmip-rekey"]
    assert _names(client, uid) == []
    # Offset 0: the replacement is activated at once.
    assert _state(client, new_uid) == enums.State.ACTIVE
    assert client.get(uid).value == old  # the old key stays usable


def test_check(client):
    uid = client.create(AES, 256,
                        cryptographic_usage_mask=[MASK.ENCRYPT, MASK.DECRYPT])
    client.activate(uid)
    assert client.check(uid, usage_limits_count=100,
                        cryptographic_usage_mask=[MASK.ENCRYPT],
                        lease_time=60) == uid
    with pytest.raises(pie_exc.KmipOperationFailure) as ei:
        client.check(uid, cryptographic_usage_mask=[MASK.SIGN])
    assert ei.value.reason == enums.ResultReason.PERMISSION_DENIED
