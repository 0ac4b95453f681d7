"""Drives GridWhistle's Open311 endpoint with `georeport` (PyPI, Apache-2.0), a maintained
GeoReport v2 client, in JSON and in XML: a real client's reading of the spec, not ours.

Usage: open311_client.py ROOT_URL JURISDICTION SERVICE_REQUEST_ID
Exits non-zero with a message when the client cannot read what the server sent.
"""

import sys

from georeport import GeoReport


def as_list(value):
    # xmltodict gives a dict for a single child element and a list for several.
    if isinstance(value, list):
        return value
    return [value]


def main():
    root, jurisdiction, request_id = sys.argv[1:4]
    for output_format in ("json", "xml"):
        client = GeoReport(root, jurisdiction=jurisdiction, output_format=output_format)

        services = as_list(client.get_service_list())
        by_code = {s["service_code"]: s for s in services}
        assert "environment" in by_code, f"{output_format}: services {sorted(by_code)}"
        assert by_code["environment"]["service_name"] == "市容环境", by_code["environment"]
        assert str(by_code["environment"]["type"]) == "realtime", by_code["environment"]

        definition = client.get_service_definition("environment")
        assert definition["service_code"] == "environment", definition

        listed = as_list(client.get_service_requests(status="open"))
        ids = [r["service_request_id"] for r in listed]
        assert request_id in ids, f"{output_format}: {request_id} not in {ids}"

        one = client.get_service_request(request_id)
        one = as_list(one)[0]
        assert one["service_request_id"] == request_id, one
        assert one["status"] == "open", one
        assert one["service_code"] == "environment", one
        assert one["agency_responsible"] == "忻府区城市管理局", one
        print(f"{output_format}: {len(services)} services, {len(listed)} open requests, {request_id} read back")
    print("ok")


if __name__ == "__main__":
    main()
