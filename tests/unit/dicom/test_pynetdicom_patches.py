"""The pynetdicom patches: a canary on the internals they rely on, the version guard, the switches.

The canary fails when the source of a pynetdicom internal that a patch (or `retrieve.retrieve_contexts`)
relies on changes, which is what an upgrade of pynetdicom does: re-check that patch in
`appliance/dicom/pynetdicom_patches.py` (is it still needed, still right, does it still pay?), then
record the new fingerprint printed by the failure here.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import inspect
import io
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pydicom.config
import pydicom.uid
import pynetdicom
import pytest
from pynetdicom import AE, _config, evt, fsm
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_FIND_RSP, C_GET_RSP, C_STORE_RQ
from pynetdicom.dimse_primitives import C_FIND, C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.transport import AddressInformation, AssociationSocket

from appliance.dicom import admission
from appliance.dicom import pynetdicom_patches as patches
from appliance.dicom.guarded_server import GuardedSocket

# The pynetdicom these fingerprints were taken from.
FINGERPRINTED_VERSION = "3.0.4"

# sha256 (first 16 hex digits) of the source of each internal a patch relies on, by patch.
FINGERPRINTS: dict[str, dict[str, str]] = {
    "shared_contexts": {
        "pynetdicom.transport:RequestHandler._create_association": "05c8d12b79863cdb",
        "pynetdicom.presentation:negotiate_as_acceptor": "d5413f08f0ac7b32",
    },
    # `negotiation_once` keeps what negotiate_as_acceptor returns (results only read afterwards) and
    # the encoding of the A-ASSOCIATE-AC that AE-7 makes from the accept primitive and _send encodes.
    "negotiation_once": {
        "pynetdicom.acse:ACSE._negotiate_as_acceptor": "fffd360957c42a8e",
        "pynetdicom.acse:ACSE.send_accept": "c03855deabefe975",
        "pynetdicom.fsm:AE_7": "c62284735836c78a",
        "pynetdicom.presentation:negotiate_as_acceptor": "d5413f08f0ac7b32",
        "pynetdicom.pdu:PDU.pdu_type": "94f6440aae1e2e3a",
        "pynetdicom.pdu:A_ASSOCIATE_AC.__init__": "9f9c8b9176775825",
        "pynetdicom.pdu:A_ASSOCIATE_AC.from_primitive": "1dd28ce4925d42a6",
        "pynetdicom.dul:DULServiceProvider._send": "a850a7919e68484e",
    },
    # `accept_first` replaces send_accept (queue the accept, then wait for AE-7) and the state
    # machine's AE-7 entry in its table of actions, which do_action looks up at each event.
    "accept_first": {
        "pynetdicom.acse:ACSE.send_accept": "c03855deabefe975",
        "pynetdicom.acse:ACSE._negotiate_as_acceptor": "fffd360957c42a8e",
        "pynetdicom.fsm:AE_7": "c62284735836c78a",
        "pynetdicom.fsm:StateMachine.do_action": "9a883f44c7f31641",
    },
    # `requestor_answer` keeps `AssociationSocket._is_connected` true once the connection was made:
    # the requesting thread's look after `_ready`, and the readers that look at the socket first.
    "requestor_answer": {
        "pynetdicom.acse:ACSE._negotiate_as_requestor": "507959152c5896c6",
        "pynetdicom.transport:AssociationSocket.__init__": "1f0325fdef2cc353",
        "pynetdicom.transport:AssociationSocket._create_socket": "bf8b92b106c8aa07",
        "pynetdicom.transport:AssociationSocket.connect": "aeeeae413bd339dc",
        "pynetdicom.transport:AssociationSocket.close": "c726c8db53813d55",
        "pynetdicom.transport:AssociationSocket.ready": "3eb58e3d39dc076d",
    },
    # `fast_polling` also skips the DUL's first sleep when its socket wrapper holds the request read
    # already, and wakes the DUL of an association being requested (its socket not connected yet)
    # when `request` queues the A-ASSOCIATE primitive in its `to_provider_queue` (a queue.Queue).
    "fast_polling": {
        "pynetdicom.association:Association._run_reactor": "f28838c5559e462a",
        "pynetdicom.association:Association.request": "928cd0e3013c9ab9",
        "pynetdicom.dul:DULServiceProvider.__init__": "c82dafa9438ddf70",
        "pynetdicom.dul:DULServiceProvider.run_reactor": "e3a10eb3a0931e48",
        "pynetdicom.transport:AssociationSocket.__init__": "1f0325fdef2cc353",
    },
    "command_writer": {
        "pynetdicom.dimse_messages:DIMSEMessage.encode_msg": "73000c902c52832d",
        "pynetdicom.dimse_messages:DIMSEMessage._set_command_group_length": "c3057c97344d5db3",
    },
    "identifier_writer": {
        "pynetdicom.service_class:ServiceClass._c_find_scp": "da242b908ef4848c",
        "pynetdicom.service_class:ServiceClass._n_action_scp": "d398e1bcfe4d9db5",
        "pynetdicom.service_class:ServiceClass._n_create_scp": "8593a493a4633443",
        "pynetdicom.service_class:ServiceClass._n_event_report_scp": "2f9d2c7b196827fc",
        "pynetdicom.service_class:ServiceClass._n_get_scp": "4a3a1d112b868b98",
        "pynetdicom.service_class:ServiceClass._n_set_scp": "00d93e032356fd7a",
        "pynetdicom.service_class:QueryRetrieveServiceClass._get_scp": "8ca1538e3e56c4f7",
        "pynetdicom.service_class:QueryRetrieveServiceClass._move_scp": "5c14d1be3d737bef",
        "pynetdicom.service_class:RelevantPatientInformationQueryServiceClass.SCP": "94843884e19c1be0",
    },
    "serialise_reactor": {
        "pynetdicom.association:Association._run_reactor": "f28838c5559e462a",
        "pynetdicom.association:Association.send_c_store": "fa5a8127f349f8e7",
        "pynetdicom.dimse:DIMSEServiceProvider.get_msg": "890e3e04283f5aeb",
        "pynetdicom.dimse:DIMSEServiceProvider.send_msg": "a839cf2fb46976d9",
    },
    # `held_reactor` leaves a requestor's reactor paused between stores: its loop's wait for the
    # checkpoint (its DIMSE queue closed by `serialise_reactor`), what it looks at when it comes
    # out, and every end of a C-MOVE's sub-association (release, abort, kill) setting the checkpoint.
    "held_reactor": {
        "pynetdicom.association:Association._run_reactor": "f28838c5559e462a",
        "pynetdicom.association:Association.release": "c7d713502b77d702",
        "pynetdicom.association:Association._abort_blocking": "10b43ef8c63c6764",
        "pynetdicom.association:Association.kill": "8f9713666a7f4cff",
        "pynetdicom.service_class:QueryRetrieveServiceClass._move_scp": "5c14d1be3d737bef",
    },
    "throttled_retrieve_responses": {
        "pynetdicom.service_class:QueryRetrieveServiceClass._get_scp": "8ca1538e3e56c4f7",
        "pynetdicom.service_class:QueryRetrieveServiceClass._move_scp": "5c14d1be3d737bef",
        "pynetdicom.service_class:ServiceClass.dimse": "8d9522c23d7edf68",
    },
    # `direct_store` replicates send_c_store's pause of the reactor and its reading of the response,
    # writes PDUs framed as encode_msg frames them, and wraps the socket's send that the DUL calls;
    # the retrieve SCPs call send_c_store with these keywords.
    "direct_store": {
        "pynetdicom.association:Association.send_c_store": "fa5a8127f349f8e7",
        "pynetdicom.association:Association._get_valid_context": "117a52c2ae6720e0",
        "pynetdicom.association:Association._check_received_status": "364c3ae215b58646",
        "pynetdicom.association:Association._handle_no_response": "6f3d62518395c3a8",
        "pynetdicom.association:Association._run_reactor": "f28838c5559e462a",
        "pynetdicom.dimse:DIMSEServiceProvider.maximum_pdu_size": "600fc7073d35ccd6",
        "pynetdicom.dimse_messages:DIMSEMessage.encode_msg": "73000c902c52832d",
        "pynetdicom.dul:DULServiceProvider._send": "a850a7919e68484e",
        "pynetdicom.transport:AssociationSocket.send": "1ea8158c0b51faca",
        "pynetdicom.service_class:QueryRetrieveServiceClass._get_scp": "8ca1538e3e56c4f7",
        "pynetdicom.service_class:QueryRetrieveServiceClass._move_scp": "5c14d1be3d737bef",
    },
    # `direct_response` wraps the DUL's look at its socket (it restarts its idle timer when that
    # read something), reads what DT-2 would hand to the DIMSE provider, waits as get_msg does (the
    # DIMSE timeout), and makes the status Dataset _check_received_status makes of a valid response.
    "direct_response": {
        "pynetdicom.dul:DULServiceProvider._is_transport_event": "8725ed03bb8fbdef",
        "pynetdicom.dul:DULServiceProvider.run_reactor": "e3a10eb3a0931e48",
        "pynetdicom.transport:AssociationSocket.ready": "3eb58e3d39dc076d",
        "pynetdicom.fsm:DT_2": "9ec543394e0b49eb",
        "pynetdicom.dimse:DIMSEServiceProvider.get_msg": "890e3e04283f5aeb",
        "pynetdicom.dimse:DIMSEServiceProvider.dimse_timeout": "0d890d2d463c2c9b",
        "pynetdicom.association:Association.send_c_store": "fa5a8127f349f8e7",
        "pynetdicom.association:Association._check_received_status": "364c3ae215b58646",
        "pynetdicom.dimse_primitives:C_STORE.is_valid_response": "fb4e9ebbf3bc38fe",
    },
    # `socket_wait`: the DUL thread (the provider itself) sleeps between looks at its socket, which
    # it reads when `ready` (select, connected) says so; a closed socket wrapper has no socket.
    "socket_wait": {
        "pynetdicom.dul:DULServiceProvider.run_reactor": "e3a10eb3a0931e48",
        "pynetdicom.dul:DULServiceProvider._is_transport_event": "8725ed03bb8fbdef",
        "pynetdicom.transport:AssociationSocket.ready": "3eb58e3d39dc076d",
        "pynetdicom.transport:AssociationSocket.close": "c726c8db53813d55",
    },
    # `wake_on_arrival` takes over the idle sleep at the top of both reactor loops: the association
    # thread looks at the DIMSE queue, the DUL's indications (release, abort) and its pause
    # checkpoint; the DUL thread at its socket, what is queued for it to send, its events and its
    # stop flag (set by kill_dul and stop_dul); the queues are the ones made at construction.
    "wake_on_arrival": {
        "pynetdicom.association:Association._run_reactor": "f28838c5559e462a",
        "pynetdicom.association:Association.kill": "8f9713666a7f4cff",
        "pynetdicom.dul:DULServiceProvider.run_reactor": "e3a10eb3a0931e48",
        "pynetdicom.dul:DULServiceProvider.stop_dul": "28a7e0be126e7b30",
        "pynetdicom.dul:DULServiceProvider.kill_dul": "5ceccf8dd01c2072",
        "pynetdicom.dul:DULServiceProvider.send_pdu": "7cbce5da8594124e",
        "pynetdicom.dul:DULServiceProvider._process_recv_primitive": "4c0ebbb3e646e35e",
        "pynetdicom.dul:DULServiceProvider.__init__": "c82dafa9438ddf70",
        "pynetdicom.dimse:DIMSEServiceProvider.__init__": "bbecd186810e7700",
        "pynetdicom.acse:ACSE.is_release_requested": "894b33d21a8dec8e",
        "pynetdicom.acse:ACSE.is_aborted": "ad2eb3f545a9ed05",
    },
    # `command_reader` stands in for receive_primitive (called by DT-2 through the DIMSE provider's
    # attribute), reads what decode_msg reads and queues what message_to_primitive makes; the
    # responses it reads are taken by send_c_store (and `direct_store`) and checked as they are.
    "command_reader": {
        "pynetdicom.association:Association.send_c_store": "fa5a8127f349f8e7",
        "pynetdicom.association:Association._check_received_status": "364c3ae215b58646",
        "pynetdicom.dimse:DIMSEServiceProvider.receive_primitive": "5f99c86b14a15cef",
        "pynetdicom.dimse_messages:DIMSEMessage.decode_msg": "f51c777e841a76be",
        "pynetdicom.dimse_messages:DIMSEMessage.message_to_primitive": "f8f43d34e43450ef",
        "pynetdicom.fsm:DT_2": "9ec543394e0b49eb",
        "pynetdicom.dimse_primitives:C_STORE.__init__": "d6deffe2538504c1",
        "pynetdicom.association:Association._run_reactor": "f28838c5559e462a",
    },
    # `store_responses` wraps the send_msg the Storage SCP calls, writes what primitive_to_message,
    # encode_msg and DT-1 write, through the socket wrapper's send.
    "store_responses": {
        "pynetdicom.service_class:StorageServiceClass.SCP": "63afca7fc6c6e7ee",
        "pynetdicom.service_class:ServiceClass.validate_status": "4c92e97ae31a8f1f",
        "pynetdicom.dimse:DIMSEServiceProvider.send_msg": "a839cf2fb46976d9",
        "pynetdicom.dimse_messages:DIMSEMessage.primitive_to_message": "71fd61d5997f0f0c",
        "pynetdicom.dimse_messages:DIMSEMessage.encode_msg": "73000c902c52832d",
        "pynetdicom.fsm:DT_1": "82e5c5d4114534fa",
        "pynetdicom.dul:DULServiceProvider._send": "a850a7919e68484e",
        "pynetdicom.transport:AssociationSocket.send": "1ea8158c0b51faca",
    },
    # `direct_requests` reads P-DATA-TF PDUs as the DUL reads them (recv of the header, then of the
    # rest; decoded into its PDVs, each a context ID and its bytes) and hands them over as DT-2 does,
    # from the idle sleep at the top of the association's reactor loop (get_msg after it); the DUL
    # restarts its idle timer after a read and triggers the PDU "received" events while decoding.
    "direct_requests": {
        "pynetdicom.dul:DULServiceProvider._read_pdu_data": "19f2d4e38c13c835",
        "pynetdicom.dul:DULServiceProvider._decode_pdu": "fc71dd1bf853e1ce",
        "pynetdicom.dul:DULServiceProvider._is_transport_event": "8725ed03bb8fbdef",
        "pynetdicom.dul:DULServiceProvider.run_reactor": "e3a10eb3a0931e48",
        "pynetdicom.dul:DULServiceProvider.__init__": "c82dafa9438ddf70",
        "pynetdicom.fsm:DT_2": "9ec543394e0b49eb",
        "pynetdicom.pdu:P_DATA_TF.to_primitive": "3cba1cd31f03fdf0",
        "pynetdicom.pdu:P_DATA_TF._wrap_generate_items": "b2ab7ad6fe47ff4a",
        "pynetdicom.pdu_items:PresentationDataValueItem._decoders": "8b7a0501299eab95",
        "pynetdicom.association:Association._run_reactor": "f28838c5559e462a",
        "pynetdicom.dimse:DIMSEServiceProvider.receive_primitive": "5f99c86b14a15cef",
    },
    # Not a patch: `guarded_server` subclasses these and relies on how they read a PDU (recv(6)
    # then recv(length)), create the association's socket wrapper (`acceptor_association` and
    # `connect` build an acceptor as `_create_association` does, in two steps), and let a DUL
    # thread die; and
    # on how the DUL decodes a PDU and the state machine makes the request's primitive (once), to
    # hand them the request it decoded already (`GuardedDUL`).
    "guarded_server": {
        "pynetdicom.dul:DULServiceProvider._decode_pdu": "fc71dd1bf853e1ce",
        "pynetdicom.fsm:AE_6": "385d595ed49432af",
        "pynetdicom.transport:RequestHandler.handle": "034823fb4df3a874",
        "pynetdicom.transport:RequestHandler._create_association": "05c8d12b79863cdb",
        "pynetdicom.transport:AssociationSocket.recv": "6bc20a33b1b7cfe7",
        "pynetdicom.transport:AssociationSocket.ready": "3eb58e3d39dc076d",
        "pynetdicom.dul:DULServiceProvider._read_pdu_data": "19f2d4e38c13c835",
        "pynetdicom.dul:DULServiceProvider.run_reactor": "e3a10eb3a0931e48",
    },
    # The DUL reads each PDU through its socket wrapper's `recv` (header, then the rest), which
    # `quick_ack` wraps per association.
    "quick_ack": {
        "pynetdicom.dul:DULServiceProvider._read_pdu_data": "19f2d4e38c13c835",
        "pynetdicom.transport:AssociationSocket.recv": "6bc20a33b1b7cfe7",
    },
    # pydicom's UID class (its file's source: the patch replaces the live `is_valid`).
    "uid_checks": {"pydicom.uid:UID": "a26b4557e9e74a2c"},
    # `prompt_kill` (in `fast_polling`'s clock) shortens the sleep of `kill` between its calls of
    # `stop_dul`, which stops only a DUL in Sta1; the release's `kill` comes once the A-RELEASE-RP is in.
    "prompt_kill": {
        "pynetdicom.association:Association.kill": "8f9713666a7f4cff",
        "pynetdicom.dul:DULServiceProvider.stop_dul": "28a7e0be126e7b30",
        "pynetdicom.acse:ACSE.negotiate_release": "e66977c7292334c5",
    },
    "retrieve_contexts": {
        "pynetdicom.association:Association.run_reactor": "ed8bbbe3b3d6ddae",
        "pynetdicom.association:ServiceUser.supported_contexts": "4ca3c0faaf6e6676",
        "pynetdicom.association:ServiceUser.writeable": "23590ca1ce9969c3",
        "pynetdicom.acse:ACSE._negotiate_as_acceptor": "fffd360957c42a8e",
    },
}

# The exact lines each patch relies on, in the order they must appear (stripped) in the source.
RELIED_ON: dict[str, list[tuple[str, list[str]]]] = {
    "shared_contexts": [
        ("pynetdicom.transport", ["from copy import deepcopy"]),
        (
            "pynetdicom.transport:RequestHandler._create_association",
            ["assoc.acceptor.supported_contexts = deepcopy(self.server.contexts)"],
        ),
    ],
    "negotiation_once": [
        ("pynetdicom.acse", ["negotiate_as_acceptor,"]),
        ("pynetdicom.acse:ACSE._negotiate_as_acceptor", ["result, ac_roles = negotiate_as_acceptor("]),
        ("pynetdicom.fsm", ["A_ASSOCIATE_AC,"]),
        ("pynetdicom.fsm:AE_7", ["dul._send(A_ASSOCIATE_AC(primitive))"]),
        ("pynetdicom.dul:DULServiceProvider._send", ["self.socket.send(pdu.encode())"]),
    ],
    "requestor_answer": [
        (
            "pynetdicom.acse:ACSE._negotiate_as_requestor",
            [
                "self.send_request()",
                "socket._ready.wait()",
                "if not socket._is_connected:",
                "self.assoc.abort()",
                "rsp = self.dul.receive_pdu(wait=True, timeout=self.acse_timeout)",
            ],
        ),
        (
            "pynetdicom.transport:AssociationSocket.close",
            [
                "if self.socket is None or self._is_connected is False:",
                "self.socket = None",
                "self._is_connected = False",
            ],
        ),
        ("pynetdicom.transport:AssociationSocket.ready", ["if self.socket is None or self._is_connected is False:"]),
    ],
    "accept_first": [
        ("pynetdicom.fsm", ['"AE-7": ("Send A-ASSOCIATE-AC PDU", AE_7, "Sta6"),']),
        (
            "pynetdicom.fsm:StateMachine.do_action",
            ["action = ACTIONS[action_name]", "next_state = action[1](self.dul)"],
        ),
        (
            "pynetdicom.acse:ACSE._negotiate_as_acceptor",
            ["self.send_accept()", "evt.trigger(self.assoc, evt.EVT_ACCEPTED, {})"],
        ),
    ],
    "fast_polling": [
        ("pynetdicom.association", ["import time"]),
        ("pynetdicom.association:Association._run_reactor", ["while not self._kill:", "time.sleep(0.001)"]),
        ("pynetdicom.dul", ["import time"]),
        ("pynetdicom.dul:DULServiceProvider.__init__", ["self._run_loop_delay = 0.001"]),
        ("pynetdicom.dul:DULServiceProvider.run_reactor", ["time.sleep(self._run_loop_delay)"]),
    ],
    "command_writer": [
        ("pynetdicom.dimse_messages", ["from pynetdicom.dsutils import encode, decode, create_file_meta"]),
        (
            "pynetdicom.dimse_messages:DIMSEMessage.encode_msg",
            ["encoded_command_set = cast(bytes, encode(self.command_set, True, True))"],
        ),
    ],
    "identifier_writer": [
        ("pynetdicom.service_class", ["from pynetdicom.dsutils import decode, encode, pretty_dataset"]),
    ],
    "serialise_reactor": [
        (
            "pynetdicom.association:Association._run_reactor",
            [
                "self._is_paused = True",
                "self._reactor_checkpoint.wait()",
                "self._is_paused = False",
                "context_id, msg = self.dimse.get_msg(block=False)",
            ],
        ),
        (
            "pynetdicom.association:Association.send_c_store",
            [
                "self._reactor_checkpoint.clear()",
                "while not self._is_paused:",
                "self.dimse.send_msg(req, cast(int, context.context_id))",
                "cx_id, rsp = self.dimse.get_msg(block=True)",
                "self._reactor_checkpoint.set()",
            ],
        ),
    ],
    "held_reactor": [
        (
            "pynetdicom.association:Association._run_reactor",
            [
                "self._is_paused = True",
                "self._reactor_checkpoint.wait()",
                "self._is_paused = False",
                "context_id, msg = self.dimse.get_msg(block=False)",
                "if self.is_established and self.acse.is_release_requested():",
                "if self.acse.is_aborted():",
                "if not self.dul.is_alive():",
                "if self.dul.idle_timer_expired():",
            ],
        ),
        (
            "pynetdicom.association:Association.release",
            ["self._reactor_checkpoint.clear()", "self.acse.negotiate_release()", "self._reactor_checkpoint.set()"],
        ),
        ("pynetdicom.association:Association._abort_blocking", ["self._reactor_checkpoint.set()"]),
        ("pynetdicom.association:Association.kill", ["self._reactor_checkpoint.set()"]),
        (
            "pynetdicom.service_class:QueryRetrieveServiceClass._move_scp",
            ["status_ds = store_assoc.send_c_store(", "store_assoc.release()"],
        ),
    ],
    "throttled_retrieve_responses": [
        (
            "pynetdicom.service_class:QueryRetrieveServiceClass._move_scp",
            [
                "if None in destination[:2]:",
                "rsp.Status = 0xA801",
                "store_assoc = self.ae.associate(",
                "if not store_assoc.is_established:",
                "rsp.Status = 0xA801",
                "self.dimse.send_msg(rsp, cx_id)",
            ],
        ),
        ("pynetdicom.service_class:ServiceClass.dimse", ["return self.assoc.dimse"]),
    ],
    "socket_wait": [
        (
            "pynetdicom.dul:DULServiceProvider.run_reactor",
            ["time.sleep(self._run_loop_delay)", "elif self._is_transport_event():  # receive and decode PDU"],
        ),
        ("pynetdicom.transport:AssociationSocket.ready", ["if self.socket is None or self._is_connected is False:"]),
    ],
    "wake_on_arrival": [
        (
            "pynetdicom.association:Association._run_reactor",
            [
                "while not self._kill:",
                "time.sleep(0.001)",
                "self._reactor_checkpoint.wait()",
                "context_id, msg = self.dimse.get_msg(block=False)",
                "if self.is_established and self.acse.is_release_requested():",
                "if self.acse.is_aborted():",
            ],
        ),
        (
            "pynetdicom.dul:DULServiceProvider.run_reactor",
            [
                "time.sleep(self._run_loop_delay)",
                "if self._kill_thread:",
                "if self._process_recv_primitive():  # encode (sent by state machine)",
                "elif self._is_transport_event():  # receive and decode PDU",
                "event = self.event_queue.get(block=False)",
            ],
        ),
        ("pynetdicom.dul:DULServiceProvider.send_pdu", ["self.to_provider_queue.put(primitive)"]),
        ("pynetdicom.dul:DULServiceProvider.kill_dul", ["self._kill_thread = True"]),
        (
            "pynetdicom.dul:DULServiceProvider.stop_dul",
            ['if self.state_machine.current_state == "Sta1":', "self._kill_thread = True"],
        ),
    ],
    "command_reader": [
        ("pynetdicom.fsm:DT_2", ['dul.assoc.dimse.receive_primitive(cast("P_DATA", pdu.to_primitive()))']),
        (
            "pynetdicom.association:Association.send_c_store",
            ["cx_id, rsp = self.dimse.get_msg(block=True)", "status = self._check_received_status(rsp)"],
        ),
        ("pynetdicom.association:Association._run_reactor", ["context_id, msg = self.dimse.get_msg(block=False)"]),
    ],
    "direct_response": [
        (
            "pynetdicom.dul:DULServiceProvider.run_reactor",
            ["elif self._is_transport_event():  # receive and decode PDU", "self._idle_timer.restart()"],
        ),
        (
            "pynetdicom.dimse:DIMSEServiceProvider.get_msg",
            ["return self.msg_queue.get(block=block, timeout=self.dimse_timeout)"],
        ),
        ("pynetdicom.association:Association._check_received_status", ["status.Status = rsp.Status"]),
    ],
    "store_responses": [
        ("pynetdicom.service_class:StorageServiceClass.SCP", ["self.dimse.send_msg(rsp, cx_id)"]),
        ("pynetdicom.fsm:DT_1", ["dul._send(P_DATA_TF(primitive))"]),
    ],
    "quick_ack": [
        (
            "pynetdicom.dul:DULServiceProvider._read_pdu_data",
            ["bytestream.extend(self.socket.recv(6))", "bytestream += self.socket.recv(pdu_length)"],
        ),
    ],
    "guarded_server": [
        ("pynetdicom.dul:DULServiceProvider._read_pdu_data", ["pdu, event = self._decode_pdu(bytestream)"]),
        ("pynetdicom.fsm:AE_6", ["primitive = recv_pdu.to_primitive()"]),
    ],
    "prompt_kill": [
        (
            "pynetdicom.association:Association.kill",
            ["while self.dul.is_alive() and not self.dul.stop_dul():", "time.sleep(0.01)"],
        ),
        ("pynetdicom.dul:DULServiceProvider.stop_dul", ['if self.state_machine.current_state == "Sta1":']),
    ],
    "retrieve_contexts": [
        (
            "pynetdicom.association:Association.run_reactor",
            [
                "self.requestor.primitive = cast(A_ASSOCIATE, primitive)",
                "evt.trigger(self, evt.EVT_REQUESTED, {})",
                "self.acse.negotiate_association()",
            ],
        ),
        ("pynetdicom.association:ServiceUser.writeable", ["return self.primitive is None"]),
        ("pynetdicom.association:ServiceUser.supported_contexts", ["if not self.writeable:", "self._contexts = value"]),
    ],
}

# Each process-wide patch replaces a module global: every function calling it is affected.
CALLERS = {
    ("pynetdicom.transport", "deepcopy"): ["RequestHandler._create_association"],
    ("pynetdicom.dimse_messages", "encode"): ["DIMSEMessage._set_command_group_length", "DIMSEMessage.encode_msg"],
    ("pynetdicom.acse", "negotiate_as_acceptor"): ["ACSE._negotiate_as_acceptor"],
    ("pynetdicom.fsm", "A_ASSOCIATE_AC"): ["AE_7"],
    ("pynetdicom.service_class", "encode"): sorted(
        target.partition(":")[2] for target in FINGERPRINTS["identifier_writer"]
    ),
}

# `fast_polling` stands in for the `time` module of these modules: every use of it, counted.
TIME_CALLS = {
    "pynetdicom.association": {
        "time.sleep(0.0001)": 12,
        "time.sleep(0.001)": 1,
        "time.sleep(0.01)": 1,
        "time.sleep(0.1)": 1,
    },
    "pynetdicom.dul": {"time.sleep(self._run_loop_delay)": 2},
}


def source_of(target: str) -> str:
    """The source of `module` or `module:Qualified.name` (for a property, its getter and setter)."""
    module_name, _, qualified_name = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualified_name.split(".") if qualified_name else []:
        found = original_of(found, part, inspect.getattr_static(found, part))
    if isinstance(found, property):
        return "".join(inspect.getsource(function) for function in (found.fget, found.fset) if function)
    return inspect.getsource(found)


def original_of(owner: Any, name: str, found: Any) -> Any:
    """pynetdicom's own `owner.name` when a patch applied by an earlier test holds its place."""
    for replacements in patches.REPLACEMENTS.values():
        for item in replacements:
            if item.module is owner and item.name == name and found is item.patched:
                return item.original
    return found


def fingerprint(target: str) -> str:
    return hashlib.sha256(source_of(target).encode()).hexdigest()[:16]


def callers(module_name: str, name: str) -> list[str]:
    """The qualified names of the functions of `module_name` that call its global `name`."""
    found: list[str] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and calls(child, name):
                found.append(f"{prefix}{child.name}")

    visit(ast.parse(source_of(module_name)), "")
    return sorted(found)


def calls(function: ast.AST, name: str) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
        for node in ast.walk(function)
    )


def time_calls(module_name: str) -> dict[str, int]:
    """Every call of an attribute of the `time` module in `module_name`, as written, counted."""
    tree = ast.parse(source_of(module_name))
    return dict(
        Counter(
            ast.unparse(node)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "time"
        )
    )


def changed(patch: str, what: str) -> str:
    return (
        f"pynetdicom {pynetdicom.__version__} (fingerprinted on {FINGERPRINTED_VERSION}): {what}. Re-check the "
        f"`{patch}` patch in appliance/dicom/pynetdicom_patches.py, then update this test."
    )


@pytest.mark.parametrize(
    ("patch", "target"), [(patch, target) for patch, targets in FINGERPRINTS.items() for target in targets]
)
def test_patched_internal_unchanged(patch: str, target: str) -> None:
    actual = fingerprint(target)
    assert actual == FINGERPRINTS[patch][target], changed(patch, f"{target} changed, its fingerprint is now {actual}")


@pytest.mark.parametrize(
    ("patch", "target", "lines"),
    [(patch, target, lines) for patch, items in RELIED_ON.items() for target, lines in items],
)
def test_lines_relied_on_still_there(patch: str, target: str, lines: list[str]) -> None:
    remaining = iter(line.strip() for line in source_of(target).splitlines())
    missing = [line for line in lines if line not in remaining]
    assert missing == [], changed(patch, f"{target} no longer has, in this order: {missing}")


@pytest.mark.parametrize(("module_name", "name"), list(CALLERS))
def test_replaced_globals_have_the_same_callers(module_name: str, name: str) -> None:
    patch = {
        "deepcopy": "shared_contexts",
        "encode": "command_writer / identifier_writer",
        "negotiate_as_acceptor": "negotiation_once",
        "A_ASSOCIATE_AC": "negotiation_once",
    }[name]
    assert callers(module_name, name) == CALLERS[(module_name, name)], changed(patch, f"{module_name}.{name} callers")


@pytest.mark.parametrize("module_name", list(TIME_CALLS))
def test_time_module_used_only_to_sleep_as_before(module_name: str) -> None:
    imported_from_time = [
        node for node in ast.walk(ast.parse(source_of(module_name))) if isinstance(node, ast.ImportFrom)
    ]
    assert all(node.module != "time" for node in imported_from_time), changed("fast_polling", "from time import")
    assert time_calls(module_name) == TIME_CALLS[module_name], changed("fast_polling", f"{module_name} time calls")


def test_every_patch_is_fingerprinted_or_public() -> None:
    assert set(patches.PATCHES) - patches.PUBLIC_PATCHES <= set(FINGERPRINTS)
    assert set(patches.REPLACEMENTS) <= set(patches.PATCHES)


def test_supported_versions() -> None:
    assert patches.supported_version("3.0.4")
    assert patches.supported_version("3.0.5")
    assert not patches.supported_version("3.1.0")
    assert not patches.supported_version("2.0.2")
    assert not patches.supported_version("30.0.1")


# pynetdicom's and pydicom's defaults for the documented switches that `apply()` sets.
SWITCH_DEFAULTS = {
    "LOG_REQUEST_IDENTIFIERS": True,
    "LOG_RESPONSE_IDENTIFIERS": True,
    "LOG_HANDLER_LEVEL": "standard",
    "STORE_SEND_CHUNKED_DATASET": False,
}
VALIDATION_MODES = ("reading_validation_mode", "writing_validation_mode")


@pytest.fixture()
def restored(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """pynetdicom as shipped (switches at their defaults, nothing patched), put back as it was after the test."""
    for replacements in patches.REPLACEMENTS.values():
        for item in replacements:
            if item.original is None:  # a global this pynetdicom does not have (or no longer has)
                monkeypatch.setattr(item.module, item.name, item.patched, raising=False)  # undone: as it was
                monkeypatch.delattr(item.module, item.name)
            else:
                monkeypatch.setattr(item.module, item.name, item.original)
    for name, value in SWITCH_DEFAULTS.items():
        monkeypatch.setattr(_config, name, value)
    for mode in VALIDATION_MODES:
        monkeypatch.setattr(pydicom.config.settings, mode, pydicom.config.WARN)
    monkeypatch.setattr(patches, "_disabled", frozenset())
    monkeypatch.delenv(patches.MEASUREMENT_ENVIRONMENT, raising=False)
    return monkeypatch


def replaced(patch: str) -> bool:
    """Whether every module global `patch` replaces holds its replacement (False: every one the original)."""
    holding = [getattr(item.module, item.name, None) for item in patches.REPLACEMENTS[patch]]
    patched = [item.patched for item in patches.REPLACEMENTS[patch]]
    originals = [item.original for item in patches.REPLACEMENTS[patch]]
    assert holding in (patched, originals), f"{patch} half applied"
    return holding == patched


def assert_switches_set() -> None:
    assert (_config.LOG_REQUEST_IDENTIFIERS, _config.LOG_RESPONSE_IDENTIFIERS) == (False, False)
    assert _config.LOG_HANDLER_LEVEL == "none"
    assert _config.STORE_SEND_CHUNKED_DATASET is True
    for mode in VALIDATION_MODES:
        assert getattr(pydicom.config.settings, mode) == pydicom.config.IGNORE


def test_unsupported_version_patches_nothing_internal_but_sets_the_switches(restored: pytest.MonkeyPatch) -> None:
    restored.setattr(pynetdicom, "__version__", "3.1.0")
    assert patches.apply() is False
    assert [patch for patch in patches.REPLACEMENTS if replaced(patch)] == []
    assert [patch for patch in patches.PATCHES if patches.in_force(patch)] == ["no_delay"]
    assert_switches_set()
    event = fake_event()
    dimse = dict(vars(event.assoc.dimse))
    patches.serialise_reactor(event)
    assert vars(event.assoc.dimse) == dimse
    assert_final_status_only(event)


def test_a_global_pynetdicom_no_longer_has_is_left_absent() -> None:
    module = ModuleType("pynetdicom_without_deepcopy")
    item = patches.replacement(module, "deepcopy", patches.share_contexts)
    item.put(False)
    assert not hasattr(module, "deepcopy")
    item.put(True)
    assert module.deepcopy is patches.share_contexts
    item.put(False)
    assert not hasattr(module, "deepcopy")


def test_supported_version_takes_every_patch(restored: pytest.MonkeyPatch) -> None:
    assert patches.apply() is True
    assert [patch for patch in patches.REPLACEMENTS if not replaced(patch)] == []
    assert all(patches.in_force(patch) for patch in patches.PATCHES)
    assert_switches_set()


def test_disabled_patches_are_left_out_and_come_back(restored: pytest.MonkeyPatch) -> None:
    disabled = frozenset({"fast_polling", "throttled_retrieve_responses"})
    assert patches.apply(disabled) is True
    assert {patch for patch in patches.REPLACEMENTS if not replaced(patch)} == {"fast_polling"}
    assert {patch for patch in patches.PATCHES if not patches.in_force(patch)} == disabled
    assert_final_status_only(fake_event())
    patches.apply()
    assert all(replaced(patch) for patch in patches.REPLACEMENTS)


def test_the_bench_disables_patches_through_the_environment(restored: pytest.MonkeyPatch) -> None:
    restored.setenv(patches.MEASUREMENT_ENVIRONMENT, "command_writer, shared_contexts")
    patches.apply()
    assert {patch for patch in patches.REPLACEMENTS if not replaced(patch)} == {"command_writer", "shared_contexts"}
    assert_switches_set()


def test_unknown_patch_names_are_refused(restored: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="fast_poling"):
        patches.apply(frozenset({"fast_poling"}))
    restored.setenv(patches.MEASUREMENT_ENVIRONMENT, "nodelay")
    with pytest.raises(ValueError, match="nodelay"):
        patches.apply()


UIDS = [
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.5.1.4.1.1.2",  # CT image storage
    "1.2.840.10008.1.2.04",  # a component with a leading zero
    "1.2.840.10008.",
    "1.2.840.10008." + "1" * 51,  # 65 characters
    "1.2.826.0.1.3680043.10.1471.17",
    "0.0",
    "1..2",
    "",
    "1.2.3a",
]


@pytest.mark.parametrize("uid", UIDS)
def test_uid_checks_answer_as_pydicom_does(uid: str) -> None:
    original = patches.REPLACEMENTS["uid_checks"][0].original
    checked = pydicom.uid.UID(uid, validation_mode=pydicom.config.IGNORE)
    assert patches.uid_is_valid(checked) == original.fget(checked)
    assert patches.uid_is_valid(uid) == original.fget(checked)  # remembered: the same again


def test_uid_checks_remember_only_the_standards_uids_and_a_bounded_number(restored: pytest.MonkeyPatch) -> None:
    known: dict[str, bool] = {}
    restored.setattr(patches, "_known_uids", known)
    restored.setattr(patches, "KNOWN_UIDS_LIMIT", 3)
    for uid in ["1.2.826.0.1.3680043.10.1471.17", *[f"1.2.840.10008.5.1.4.1.1.{n}" for n in range(5)]]:
        assert patches.uid_is_valid(uid)
    assert list(known) == [f"1.2.840.10008.5.1.4.1.1.{n}" for n in range(3)]
    assert not patches.uid_is_valid("1.2.840.10008.01")
    assert len(known) == 3


def test_uid_checks_remember_other_uids_for_a_while(restored: pytest.MonkeyPatch) -> None:
    recent: dict[str, bool] = {}
    restored.setattr(patches, "_recent_uids", recent)
    restored.setattr(patches, "RECENT_UIDS_LIMIT", 3)
    instances = [f"1.2.826.0.1.3680043.10.1471.{n}" for n in range(5)]
    for uid in instances:
        assert patches.uid_is_valid(uid) and patches.uid_is_valid(uid)
    assert list(recent) == instances[3:]  # emptied when full, then the newer ones
    assert not patches.uid_is_valid("1.2.826.0.01") and recent["1.2.826.0.01"] is False


@pytest.mark.parametrize("enforced", [False, True])
@pytest.mark.parametrize("uid", [*UIDS, "  1.2.3  ", "1" * 65])
def test_the_ui_validator_answers_as_pynetdicoms(restored: pytest.MonkeyPatch, uid: str, enforced: bool) -> None:
    restored.setattr(patches, "_recent_validations", {})
    restored.setattr(pynetdicom._config, "ENFORCE_UID_CONFORMANCE", enforced)
    original = patches.PYNETDICOM_VALIDATORS["UI"]
    assert patches.validate_ui(uid) == original(uid)
    assert patches.validate_ui(pydicom.uid.UID(uid, validation_mode=pydicom.config.IGNORE)) == original(uid)
    assert patches.validate_ui(uid) == original(uid)  # remembered (unless enforced): the same again
    remembered = patches._recent_validations
    assert (uid in remembered) is not enforced
    assert all(answer == original(key) for key, answer in remembered.items())


def test_the_ui_validator_is_pynetdicoms_for_what_is_not_a_string(restored: pytest.MonkeyPatch) -> None:
    restored.setattr(patches, "_recent_validations", {})
    assert (
        patches.validate_ui(b"1.2.3")
        == patches.PYNETDICOM_VALIDATORS["UI"](b"1.2.3")
        == (False, "must be pydicom.uid.UID")
    )
    assert patches._recent_validations == {}


def test_uid_checks_put_the_ui_validator_in_pynetdicoms_table_and_take_it_out(restored: pytest.MonkeyPatch) -> None:
    patches.apply()
    assert pynetdicom._config.VALIDATORS["UI"] is patches.validate_ui
    assert pynetdicom._config.VALIDATORS["AE"] is patches.PYNETDICOM_VALIDATORS["AE"]
    patches.apply(frozenset({"uid_checks"}))
    assert pynetdicom._config.VALIDATORS["UI"] is patches.PYNETDICOM_VALIDATORS["UI"]


def test_uid_checks_stand_in_for_pydicoms_property(restored: pytest.MonkeyPatch) -> None:
    original = patches.REPLACEMENTS["uid_checks"][0].original
    patches.apply()
    assert pydicom.uid.UID.is_valid is not original
    assert pydicom.uid.UID("1.2.840.10008.1.2").is_valid and not pydicom.uid.UID("1.2.840.10008.1.02").is_valid
    patches.apply(frozenset({"uid_checks"}))
    assert inspect.getattr_static(pydicom.uid.UID, "is_valid") is original


def fake_event() -> Any:
    """An event whose association records what its DIMSE provider sends."""
    sent: list[Any] = []
    dimse = SimpleNamespace(sent=sent, send_msg=lambda primitive, _context_id: sent.append(primitive))
    dimse.get_msg = lambda block=False: (None, None)
    return SimpleNamespace(assoc=SimpleNamespace(dimse=dimse, _reactor_checkpoint=threading.Event()))


def response(kind: type[C_GET] | type[C_MOVE], status: int) -> Any:
    primitive = kind()
    primitive.MessageIDBeingRespondedTo = 1
    primitive.Status = status
    return primitive


def assert_final_status_only(event: Any) -> None:
    """Without the throttling patch every Pending response goes out, and the final status filter
    (a matter of correctness) is still there."""
    patches.throttled_retrieve_responses(event)
    patches.refuse_retrieve(event.assoc, 0x0124)
    for _ in range(3):
        event.assoc.dimse.send_msg(response(C_GET, patches.PENDING), 1)
    event.assoc.dimse.send_msg(response(C_GET, 0x0000), 1)
    assert [primitive.Status for primitive in event.assoc.dimse.sent] == [patches.PENDING] * 3 + [0x0124]


def test_a_refusal_replaces_the_final_status_and_its_counts() -> None:
    event = fake_event()
    patches.throttled_retrieve_responses(event)
    patches.refuse_retrieve(event.assoc, 0xA900)
    final = response(C_GET, 0x0000)
    final.NumberOfCompletedSuboperations = 0
    event.assoc.dimse.send_msg(final, 1)
    event.assoc.dimse.send_msg(response(C_GET, 0x0000), 3)  # the next C-GET is not refused
    assert [primitive.Status for primitive in event.assoc.dimse.sent] == [0xA900, 0x0000]
    assert event.assoc.dimse.sent[0].NumberOfCompletedSuboperations is None


def test_pending_retrieve_responses_are_throttled() -> None:
    event = fake_event()
    patches.throttled_retrieve_responses(event)
    for _ in range(5):
        event.assoc.dimse.send_msg(response(C_GET, patches.PENDING), 1)
    event.assoc.dimse.send_msg(response(C_GET, 0x0000), 1)
    assert [primitive.Status for primitive in event.assoc.dimse.sent] == [patches.PENDING, 0x0000]


def test_a_refused_known_destination_is_a702_an_unknown_one_a801() -> None:
    event = fake_event()
    patches.throttled_retrieve_responses(event)
    patches.note_move_destination(event.assoc, "STORESCP at 127.0.0.1:11113")
    event.assoc.dimse.send_msg(response(C_MOVE, patches.MOVE_DESTINATION_UNKNOWN), 1)
    event.assoc.dimse.send_msg(response(C_MOVE, patches.MOVE_DESTINATION_UNKNOWN), 3)  # next C-MOVE: unknown AE
    statuses = [primitive.Status for primitive in event.assoc.dimse.sent]
    assert statuses == [patches.UNABLE_TO_PERFORM_SUBOPERATIONS, patches.MOVE_DESTINATION_UNKNOWN]


def command_sets() -> list[Any]:
    """Command sets as pynetdicom builds them: a C-STORE-RQ of a C-MOVE, a C-GET-RSP, a C-FIND-RSP."""
    store = C_STORE()
    store.MessageID = 7
    store.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    store.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.10.1471.17"
    store.Priority = 0
    store.MoveOriginatorApplicationEntityTitle = "MOVESCU"
    store.MoveOriginatorMessageID = 3
    get = response(C_GET, patches.PENDING)
    get.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.3"
    get.NumberOfRemainingSuboperations = 599
    get.NumberOfCompletedSuboperations = 1
    get.NumberOfFailedSuboperations = get.NumberOfWarningSuboperations = 0
    find = C_FIND()
    find.MessageIDBeingRespondedTo = 2
    find.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    find.Status = 0x0000
    messages = [(C_STORE_RQ(), store), (C_GET_RSP(), get), (C_FIND_RSP(), find)]
    for message, primitive in messages:
        message.primitive_to_message(primitive)
    return [message.command_set for message, _ in messages]


@pytest.mark.parametrize("command_set", command_sets())
def test_command_writer_writes_what_pydicom_writes(command_set: Any) -> None:
    assert patches.encode_command_set(command_set, True, True) == encode(command_set, True, True)


@pytest.mark.parametrize(("originator", "originator_id"), [(None, None), ("MOVESCU", 3), ("ARCHIVE1", 65535)])
def test_direct_store_writes_the_command_set_pynetdicom_writes(
    originator: str | None, originator_id: int | None
) -> None:
    store = C_STORE()
    store.MessageID = 65535
    store.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    store.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.10.1471.17"
    store.Priority = 2
    store.MoveOriginatorApplicationEntityTitle = originator
    store.MoveOriginatorMessageID = originator_id
    store.DataSet = io.BytesIO(b"\0\0")
    message = C_STORE_RQ()
    message.primitive_to_message(store)
    request = patches.StoreRequest("1.2.840.10008.5.1.4.1.1.4", "1.2.826.0.1.3680043.10.1471.17",
                                   "1.2.840.10008.1.2", 65535, 2, originator, originator_id)  # fmt: skip
    assert patches.store_command(request) == encode(message.command_set, True, True)


@pytest.mark.parametrize("maximum", [0, 16384, 131072, 4096])
@pytest.mark.parametrize("size", [1, 16377, 16378, 16379, 600_001])
def test_direct_store_frames_fragments_as_pynetdicom_does(maximum: int, size: int) -> None:
    """The PDUs of a data set: the same bytes as pynetdicom's P-DATA-TF PDUs for the same message."""
    from pynetdicom.pdu import P_DATA_TF

    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    store = C_STORE()
    store.MessageID = 1
    store.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    store.AffectedSOPInstanceUID = "1.2.3"
    store.Priority = 2
    store.DataSet = io.BytesIO(data)
    message = C_STORE_RQ()
    message.primitive_to_message(store)
    expected = []
    for primitive in message.encode_msg(5, maximum):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        expected.append(pdu.encode())
    fragment = patches.fragment_bytes(maximum)
    command = list(patches.pdus(5, patches.COMMAND_FRAGMENT, memoryview(patches.store_command(
        patches.StoreRequest("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2.840.10008.1.2.1", 1)
    )), fragment, True))  # fmt: skip
    blocks = patches.ContentBlocks(patches.StoreContent(data=data), 5, fragment)
    with blocks as written:
        data_pdus = [part for block in written for part in block]
    ours = b"".join(bytes(part) for part in [*command, *data_pdus])
    if maximum == 0 and size > patches.UNLIMITED_FRAGMENT_BYTES:
        pytest.skip("pynetdicom sends one PDU of any length")
    assert ours == b"".join(expected)


def test_direct_store_reads_a_file_from_its_data_set(tmp_path: Any) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"HEAD" + bytes(range(256)) * 9000)
    fragment = patches.fragment_bytes(16384)
    whole = patches.ContentBlocks(patches.StoreContent(data=bytes(range(256)) * 9000), 3, fragment)
    streamed = patches.ContentBlocks(patches.StoreContent(path=path, offset=4), 3, fragment)
    with whole as expected, streamed as actual:
        assert b"".join(bytes(part) for block in actual for part in block) == b"".join(
            bytes(part) for block in expected for part in block
        )


def dul_sleep(association: Association, seconds: float) -> float:
    """How long `CLOCK.sleep(seconds)` takes in the DUL thread of `association`."""
    provider = association.dul
    slept: list[float] = []

    def run() -> None:
        start = time.monotonic()
        patches.CLOCK.sleep(seconds)
        slept.append(time.monotonic() - start)

    provider.run = run  # type: ignore[method-assign]
    provider.start()
    provider.join(10)
    return slept[0]


def sleep_in_dul_thread(connection: socket.socket, seconds: float) -> float:
    """How long `CLOCK.sleep(seconds)` takes in the DUL thread of an association on `connection`."""
    association = Association(AE(), "requestor")
    association.dul.socket = AssociationSocket(association, client_socket=connection)
    return dul_sleep(association, seconds)


def test_the_state_machine_s_actions_are_pynetdicom_s_but_ae_7_signals(restored: pytest.MonkeyPatch) -> None:
    patches.apply()
    assert fsm.ACTIONS.keys() == patches.ORIGINAL_ACTIONS.keys()
    changed = {name for name in fsm.ACTIONS if fsm.ACTIONS[name] != patches.ORIGINAL_ACTIONS[name]}
    assert changed == {"AE-7"}
    assert fsm.ACTIONS["AE-7"][0::2] == patches.ORIGINAL_ACTIONS["AE-7"][0::2]  # its description and next state


def test_an_acceptor_goes_on_once_its_a_associate_ac_is_written(restored: pytest.MonkeyPatch) -> None:
    """`accept_first`: when pynetdicom's EVT_ACCEPTED handlers run (the reactor's next step after
    `send_accept`), the DUL has written the A-ASSOCIATE-AC; without the patch, it may not have."""
    patches.apply()
    states: list[str] = []
    archive = AE("ARCHIVE")
    archive.add_supported_context("1.2.840.10008.1.1")
    handlers = [(evt.EVT_ACCEPTED, lambda event: states.append(event.assoc.dul.state_machine.current_state))]
    server = archive.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    try:
        modality = AE("MODALITY")
        modality.add_requested_context("1.2.840.10008.1.1")
        for _ in range(5):
            association = modality.associate("127.0.0.1", server.server_address[1], ae_title="ARCHIVE")
            assert association.is_established and association.send_c_echo().Status == 0
            association.release()
    finally:
        server.shutdown()
    assert states == ["Sta6"] * 5


def test_an_accept_the_dul_does_not_write_holds_the_reactor_only_briefly(restored: pytest.MonkeyPatch) -> None:
    patches.apply()
    restored.setattr(patches, "ACCEPT_WAIT_SECONDS", 0.05)
    association = Association(AE(), "acceptor")
    association.requestor.primitive = A_ASSOCIATE()  # what send_accept answers
    association.requestor.primitive.calling_ae_title = "MODALITY"
    association.requestor.primitive.called_ae_title = "ARCHIVE"
    start = time.monotonic()
    association.acse.send_accept()  # no DUL thread runs: nothing writes it
    assert 0.05 <= time.monotonic() - start < 1.0
    assert association.dul.to_provider_queue.qsize() == 1  # queued as pynetdicom queues it


# Every line of pynetdicom (its tests aside) that mentions `_is_connected`, counted: a new reader is
# one more place where "was connected" and "is connected" may differ (`requestor_answer`).
CONNECTED_LINES = {
    "pynetdicom.acse": {"if not socket._is_connected:": 1},
    "pynetdicom.transport": {
        "self._is_connected = False": 3,
        "self._is_connected = True": 2,
        "if self.socket is None or self._is_connected is False:": 2,
        "#   it doesn't work because `_is_connected` is False": 1,
    },
}


def test_connected_is_read_only_where_the_patch_was_checked() -> None:
    package = os.path.dirname(pynetdicom.__file__)
    found: dict[str, Counter[str]] = {}
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            with open(os.path.join(package, name), encoding="utf-8") as source:
                lines = Counter(line.strip() for line in source if "_is_connected" in line)
            if lines:
                found[f"pynetdicom.{name.removesuffix('.py')}"] = lines
    assert found == CONNECTED_LINES, changed("requestor_answer", "the lines using AssociationSocket._is_connected")


def rejecting_peer(server: socket.socket) -> None:
    """Read one A-ASSOCIATE-RQ, answer the archive's transient A-ASSOCIATE-RJ, close."""
    connection, _ = server.accept()
    with connection:
        header = connection.recv(6, socket.MSG_WAITALL)
        connection.recv(admission.pdu_length(header), socket.MSG_WAITALL)
        answer = admission.too_many("a test of the requestor")
        assert answer.pdu is not None
        connection.sendall(answer.pdu)


def request_looking_late(port: int) -> Association:
    """An association requested of the peer on `port`, whose requesting thread looks at its
    connection only once its DUL has read the answer and closed the connection (the order the
    race gave, now every time)."""

    def wait_until_closed(event: Any) -> None:
        deadline = time.monotonic() + 5.0
        while event.assoc.dul.socket.socket is not None and time.monotonic() < deadline:
            time.sleep(0.001)

    modality = AE("MODALITY")
    modality.add_requested_context("1.2.840.10008.1.1")
    return modality.associate("127.0.0.1", port, ae_title="PEER", evt_handlers=[(evt.EVT_REQUESTED, wait_until_closed)])


@pytest.mark.parametrize("in_force", [True, False])
def test_a_rejection_read_before_the_requestor_looks_is_a_rejection(
    restored: pytest.MonkeyPatch, in_force: bool
) -> None:
    """`requestor_answer`: pynetdicom took a connection closed after the peer's A-ASSOCIATE-RJ for
    one never made, and aborted (without the patch, checked here too)."""
    patches.apply(frozenset() if in_force else frozenset({"requestor_answer"}))
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = threading.Thread(target=rejecting_peer, args=(server,))
        peer.start()
        association = request_looking_late(server.getsockname()[1])
        peer.join()
    if in_force:
        assert association.is_rejected and not association.is_aborted
        assert association.acceptor.primitive.result == admission.REJECTED_TRANSIENT
    else:
        assert association.is_aborted and not association.is_rejected


def test_a_connection_never_made_is_still_an_abort(restored: pytest.MonkeyPatch) -> None:
    patches.apply()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]  # closed: nothing listens there any more
    modality = AE("MODALITY")
    modality.add_requested_context("1.2.840.10008.1.1")
    association = modality.associate("127.0.0.1", port, ae_title="PEER")
    assert association.is_aborted and not association.is_rejected and not association.is_established


def test_a_dul_thread_stops_sleeping_when_its_peer_sends() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sender = threading.Timer(0.05, theirs.sendall, (b"\x05",))
        sender.start()
        assert sleep_in_dul_thread(ours, 5.0) < 2.5
        sender.join()
        ours.recv(1)
        assert sleep_in_dul_thread(ours, 0.05) >= 0.05  # nothing came: the whole sleep


def test_a_dul_holding_the_association_request_read_already_does_not_sleep() -> None:
    """The acceptor read the request (`GuardedSocket.pending`): no poll of the connection would see
    it, and pynetdicom's DUL sleeps once before its first look. It looks at once instead."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        association = Association(AE(), "acceptor")
        association.dul.socket = AssociationSocket(association, client_socket=ours)
        association.dul.socket.pending = bytearray(b"\x01")  # a GuardedSocket with the request read
        assert patches.holds_unread(association.dul) and not patches.holds_unread(threading.current_thread())
        assert dul_sleep(association, 1.0) < 0.0001  # no sleep at all (pynetdicom asks 1 ms, the fast poll 0.2 ms)
        association.dul.socket.pending = bytearray()
        assert not patches.holds_unread(association.dul)
        assert sleep_in_dul_thread(ours, 0.05) >= 0.05  # nothing pending, nothing came: the whole sleep


def sleep_in_requestor_dul(put_after: float | None, seconds: float) -> float:
    """How long `CLOCK.sleep(seconds)` takes in the DUL thread of an association being requested
    (no connection yet), a primitive queued for the DUL after `put_after` seconds (None: never)."""
    association = Association(AE(), "requestor")
    association.dul.socket = AssociationSocket(association, address=AddressInformation("127.0.0.1", 0))
    assert patches.woken_by_request(threading.current_thread(), seconds) is False
    putter = threading.Timer(put_after or 0.0, association.dul.to_provider_queue.put, ("the request",))
    if put_after is not None:
        putter.start()
    try:
        return dul_sleep(association, seconds)
    finally:
        putter.cancel()


def test_the_dul_of_an_association_being_requested_wakes_when_its_request_is_queued() -> None:
    """Before its connection, no poll can wait for the request primitive its association queues:
    the DUL waits for the put itself (pynetdicom's first loop sleeps before its first look)."""
    assert sleep_in_requestor_dul(put_after=0.05, seconds=2.0) < 1.0
    assert sleep_in_requestor_dul(put_after=None, seconds=0.05) >= 0.05  # nothing queued: the whole sleep


def test_only_a_connected_dul_waits_on_its_socket() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        association = Association(AE(), "requestor")
        assert patches.dul_connection(threading.current_thread()) is None
        assert patches.dul_connection(association.dul) is None  # no socket yet
        association.dul.socket = AssociationSocket(association, client_socket=ours)
        assert patches.dul_connection(association.dul) is ours
        association.dul.socket.pending = bytearray(b"\x01")  # a GuardedSocket with a PDU already read
        assert patches.dul_connection(association.dul) is None
        association.dul.socket.pending = bytearray()
        association.dul.socket.close()
        assert patches.dul_connection(association.dul) is None


def test_each_read_acknowledges_at_once(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    """A peer that leaves Nagle on holds the rest of a message until the first part is acknowledged:
    with the delayed-ACK timer, every response of a retrieve took 40 ms more."""
    ours, theirs = tcp_pair
    association = Association(AE(), "requestor")
    association.dul.socket = AssociationSocket(association, client_socket=ours)
    patches.acknowledge_promptly(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
    for length in (6, 40):
        ours.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)  # as after a send: acknowledgements held back
        theirs.sendall(bytes(length))
        assert association.dul.socket.recv(length) == bytes(length)
        assert ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1


def test_quick_acknowledgements_keep_the_guarded_socket_s_reads(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = tcp_pair
    association = Association(AE(), "acceptor")
    association.dul.socket = AssociationSocket(association, client_socket=ours)
    patches.acknowledge_promptly(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
    GuardedSocket.take_over(association.dul.socket, b"\x01\x00request", 16384, lambda length: None)
    assert association.dul.socket.recv(3) == b"\x01\x00r"  # the request read before, served first
    assert association.dul.socket.recv(6) == b"equest"
    ours.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
    theirs.sendall(b"abc")
    assert association.dul.socket.recv(3) == b"abc"
    assert ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
    assert association.dul.socket.recv(20000) == b""  # longer than announced: refused unread (guard kept)


@pytest.fixture()
def long_wake_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle sleeps of 5 s at most: one that ends well before was woken."""
    monkeypatch.setattr(patches, "WAKE_POLL_SECONDS", 5.0)


def woken_after(thread: Any, wake: Any, *arguments: Any) -> float:
    """How long the idle sleep of `thread` (woken on arrival) lasts when `wake(*arguments)` is
    called 50 ms after it began."""
    waker = threading.Timer(0.05, wake, arguments)
    start = time.monotonic()
    waker.start()
    assert patches.woken_on_arrival(thread)
    waker.join()
    return time.monotonic() - start


@pytest.mark.usefixtures("long_wake_poll")
def test_an_idle_reactor_wakes_when_something_is_queued_for_it() -> None:
    association = Association(AE(), "acceptor")
    patches.wake_on_arrival(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
    assert woken_after(association, association.dimse.msg_queue.put, (1, "a request")) < 2.5
    assert association.dimse.msg_queue.get_nowait() == (1, "a request")  # still delivered
    assert woken_after(association, association.dul.to_user_queue.put, "an A-RELEASE") < 2.5
    assert woken_after(association, association._reactor_checkpoint.clear) < 2.5  # a sender asks it to pause
    assert not association._reactor_checkpoint.is_set()


@pytest.mark.usefixtures("long_wake_poll")
def test_an_idle_dul_wakes_when_something_is_queued_for_it_to_send_or_its_peer_sends() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        association = Association(AE(), "requestor")
        association.dul.socket = AssociationSocket(association, client_socket=ours)
        patches.wake_on_arrival(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
        assert woken_after(association.dul, association.dul.to_provider_queue.put, "a P-DATA") < 2.5
        assert association.dul.to_provider_queue.get_nowait() == "a P-DATA"
        assert woken_after(association.dul, association.dul.event_queue.put, "Evt18") < 2.5
        assert woken_after(association.dul, association.dul.kill_dul) < 2.5
        assert woken_after(association.dul, theirs.sendall, b"\x05") < 2.5


def test_stopping_an_idle_dul_sets_its_stop_flag_before_waiting_for_it() -> None:
    association = Association(AE(), "requestor")
    patches.wake_on_arrival(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
    assert association.dul.stop_dul()  # Sta1, not started: stopped at once
    assert association.dul._kill_thread


def test_only_reactor_and_dul_threads_with_a_wakeup_sleep_on_it() -> None:
    association = Association(AE(), "acceptor")
    assert not patches.woken_on_arrival(threading.current_thread())
    assert not patches.woken_on_arrival(association)  # no wakeup: polled as before
    assert not patches.woken_on_arrival(association.dul)
    patches.wake_on_arrival(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
    assert not patches.woken_on_arrival(association.dul)  # no connection: polled as before


def descriptor_open(descriptor: int) -> bool:
    try:
        os.fstat(descriptor)
    except OSError:
        return False
    return True


def test_the_wakeup_descriptor_is_closed_only_once_no_poll_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches, "WAKE_POLL_SECONDS", 0.3)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        wakeup = patches.Wakeup()
        sleeper = threading.Thread(target=wakeup.dul_sleep, args=(ours,))
        sleeper.start()
        time.sleep(0.05)
        wakeup.close()  # the connection closed while the DUL polls
        assert descriptor_open(wakeup.descriptor)
        sleeper.join()
        assert not descriptor_open(wakeup.descriptor)
        wakeup.wake_dul()  # closed: nothing written, no error
        wakeup.close()
        assert not wakeup.dul_sleep(ours)  # closed: nothing waited


def test_idle_associations_sleep_until_something_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ends' reactor and DUL threads, idle for half a second, sleep in tens of looks instead
    of polling every 0.2 ms (2,500 looks each); a C-ECHO still gets its answer."""
    patches.apply()
    verification = "1.2.840.10008.1.1"
    looks: Counter[str] = Counter()
    for name in ("reactor_sleep", "dul_sleep"):
        original = getattr(patches.Wakeup, name)

        def counted(self: patches.Wakeup, *arguments: Any, _name: str = name, _original: Any = original) -> Any:
            looks[_name] += 1
            return _original(self, *arguments)

        monkeypatch.setattr(patches.Wakeup, name, counted)
    archive = AE("ARCHIVE")
    archive.add_supported_context(verification)
    server = archive.start_server(("127.0.0.1", 0), block=False, evt_handlers=list(patches.CONNECTION_HANDLERS))
    assert server is not None
    try:
        requestor = AE("MODALITY")
        requestor.add_requested_context(verification)
        association = requestor.associate(
            "127.0.0.1", server.server_address[1], ae_title="ARCHIVE", evt_handlers=list(patches.REQUESTOR_HANDLERS)
        )
        assert association.is_established
        looks.clear()
        time.sleep(0.5)
        assert 0 < looks["reactor_sleep"] < 400 and 0 < looks["dul_sleep"] < 400, looks
        assert association.send_c_echo().Status == 0
        association.release()
    finally:
        server.shutdown()


CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
INSTANCE = "1.2.826.0.1.3680043.10.1471.17"


def response_pdus(message_id: int, status: int = 0x0000, comment: str | None = None, context_id: int = 1) -> bytes:
    """A C-STORE-RSP as pynetdicom itself writes it, in P-DATA-TF PDUs."""
    from pynetdicom.dimse_messages import C_STORE_RSP
    from pynetdicom.pdu import P_DATA_TF

    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = CT_IMAGE
    primitive.AffectedSOPInstanceUID = INSTANCE
    primitive.Status = status
    primitive.ErrorComment = comment
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    encoded = []
    for data in message.encode_msg(context_id, 16384):
        pdu = P_DATA_TF()
        pdu.from_primitive(data)
        encoded.append(pdu.encode())
    return b"".join(encoded)


def sender(connection: socket.socket, dimse_timeout: float = 5.0) -> Association:
    """An association in the data transfer state on `connection`, its `DulReads` installed."""
    patches.set_switches()  # as the daemons run: no logging handlers on the "received" events
    association = Association(AE(), "requestor")
    association.dul.socket = AssociationSocket(association, client_socket=connection)
    association.dul.state_machine.current_state = "Sta6"
    association.dimse_timeout = dimse_timeout
    assert patches.read_lock_installed(association)
    return association


def unread(connection: socket.socket) -> bytes:
    """What is waiting on `connection`, read."""
    try:
        return connection.recv(65536, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


ABORT = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x00])


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (response_pdus(7), (True, 0x0000)),
        (response_pdus(7, 0xB000), (True, 0xB000)),
        (response_pdus(7, 0xA700), (True, 0xA700)),
        (response_pdus(8), (False, None)),  # another request's response
        (response_pdus(7, 0xA700, "Out of resources"), (False, None)),  # not a plain response
        (response_pdus(7, context_id=3), (False, None)),  # on another context
        (response_pdus(7)[:20], (False, None)),  # not all there yet
        (ABORT, (False, None)),
    ],
)
def test_a_sender_reads_a_plain_response_to_its_request_and_leaves_anything_else(
    tcp_pair: tuple[socket.socket, socket.socket], sent: bytes, expected: tuple[bool, int | None]
) -> None:
    ours, theirs = tcp_pair
    association = sender(ours)
    association.dul._idle_timer.start()
    started = association.dul._idle_timer._start_time
    theirs.sendall(sent + ABORT)  # whatever follows stays for the DUL
    time.sleep(0.05)
    assert patches.direct_response(association, 1, 7, patches.dul_reads(association)) == expected
    assert unread(ours) == (ABORT if expected[0] else sent + ABORT)
    assert (association.dul._idle_timer._start_time != started) is expected[0]  # as the DUL restarts it


@pytest.mark.parametrize(
    ("sent", "recognised"),
    [
        (response_pdus(7), (len(response_pdus(7)), 0x0000)),
        (response_pdus(7, 0xB000) + ABORT, (len(response_pdus(7)), 0xB000)),  # what follows is not read
        (response_pdus(7, 0xA700), (len(response_pdus(7)), 0xA700)),
        (response_pdus(7, 0xA700, "Out of resources"), None),  # an Error Comment: decoded
        (response_pdus(8), None),  # another request's response
        (response_pdus(7, context_id=3), None),  # on another context
        (response_pdus(7)[:-1], None),  # not all there yet
        (ABORT, None),
    ],
)
def test_the_usual_response_is_recognised_by_its_bytes_as_decoding_reads_it(
    sent: bytes, recognised: tuple[int, int] | None
) -> None:
    usual = patches.usual_response(1, patches.StoreRequest(CT_IMAGE, INSTANCE, "1.2.840.10008.1.2.1", 7))
    assert usual is not None
    assert usual.status_in(sent) == recognised
    if recognised is not None:
        assert patches.decoded_response(sent, 1, 7) == recognised


@pytest.mark.parametrize("uid", ["1." + "2" * 64, ""])
def test_a_request_with_a_uid_pynetdicom_would_refuse_in_a_response_has_no_usual_response(uid: str) -> None:
    assert patches.usual_response(1, patches.StoreRequest(CT_IMAGE, uid, "1.2.840.10008.1.2.1", 7)) is None
    assert patches.usual_response(1, patches.StoreRequest(uid, INSTANCE, "1.2.840.10008.1.2.1", 7)) is None


def test_a_sender_waits_for_the_rest_of_a_response_whose_start_came_alone_until_it_comes(
    tcp_pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patches, "RESPONSE_REST_SECONDS", 5.0)  # the wait ends when the rest comes
    ours, theirs = tcp_pair
    association = sender(ours)
    usual = patches.usual_response(1, patches.StoreRequest(CT_IMAGE, INSTANCE, "1.2.840.10008.1.2.1", 7))
    response = response_pdus(7, 0xB000)
    theirs.sendall(response[:12])  # as DCMTK writes it: the PDU and PDV headers, then the rest
    threading.Timer(0.05, lambda: theirs.sendall(response[12:])).start()
    started = time.monotonic()
    assert patches.direct_response(association, 1, 7, patches.dul_reads(association), usual) == (True, 0xB000)
    assert 0.04 < time.monotonic() - started < 2.5
    assert not getattr(association, patches.REST_LATE_ATTRIBUTE, False) and unread(ours) == b""


def test_a_peer_late_with_the_rest_of_a_response_is_no_longer_waited_for(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    """A peer with Nagle's algorithm on holds the rest until the start is acknowledged: the sender
    leaves that response to the DUL after `RESPONSE_REST_SECONDS`, and the next ones at once."""
    ours, theirs = tcp_pair
    association = sender(ours)
    usual = patches.usual_response(1, patches.StoreRequest(CT_IMAGE, INSTANCE, "1.2.840.10008.1.2.1", 7))
    response = response_pdus(7)
    theirs.sendall(response[:12])
    started = time.monotonic()
    assert patches.direct_response(association, 1, 7, patches.dul_reads(association), usual) == (False, None)
    assert patches.RESPONSE_REST_SECONDS <= time.monotonic() - started < 1
    assert getattr(association, patches.REST_LATE_ATTRIBUTE)
    assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1  # as it was
    assert patches.peeked_response(ours, 1, 7, usual, association) is None  # not waited for again
    assert unread(ours) == response[:12]  # left to the DUL


def test_a_sender_waits_for_its_response_until_the_dimse_timeout(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = tcp_pair
    association = sender(ours, dimse_timeout=0.3)
    threading.Timer(0.1, theirs.sendall, (response_pdus(7),)).start()
    assert patches.direct_response(association, 1, 7, 0) == (True, 0x0000)  # came after 0.1 s: waited for
    start = time.monotonic()
    assert patches.direct_response(association, 1, 8, 0) == (True, None)  # none came: no response
    assert 0.3 <= time.monotonic() - start < 2.0


def test_a_sender_leaves_the_socket_to_the_dul_when_it_read_or_must_send(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = tcp_pair
    association = sender(ours)
    theirs.sendall(response_pdus(7))
    time.sleep(0.05)
    assert patches.direct_response(association, 1, 7, reads_before=-2) == (False, None)  # the DUL read since
    assert unread(ours) == response_pdus(7)
    threading.Timer(0.1, association.dul.to_provider_queue.put, ("an A-ABORT",)).start()
    start = time.monotonic()
    assert patches.direct_response(association, 1, 8, patches.dul_reads(association)) == (False, None)
    assert time.monotonic() - start < 2.0  # the DUL has something to send: left to it at once
    assert patches.direct_response(association, 1, 8, patches.dul_reads(association)) == (False, None)


def test_the_dul_does_not_look_at_the_socket_while_a_sender_waits_on_it(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = tcp_pair
    association = sender(ours)
    answers: list[tuple[bool, int | None]] = []
    waiting = threading.Thread(target=lambda: answers.append(patches.direct_response(association, 1, 7, 0)))
    waiting.start()
    time.sleep(0.05)
    looked: list[bool] = []
    dul = threading.Thread(target=lambda: looked.append(association.dul._is_transport_event()))
    dul.start()
    dul.join(0.2)
    assert dul.is_alive()  # waits for the read lock
    theirs.sendall(response_pdus(7))
    waiting.join(5)
    dul.join(5)
    assert answers == [(True, 0x0000)] and looked == [False]  # the DUL found nothing left to read
    assert patches.dul_reads(association) == 0
    theirs.sendall(ABORT)
    time.sleep(0.05)
    assert association.dul._is_transport_event()  # the DUL reads what is not for the sender, and counts it
    assert patches.dul_reads(association) == 1


def test_read_ahead_bytes_tls_and_handlers_on_received_pdus_leave_the_response_to_the_dul(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _theirs = tcp_pair
    association = sender(ours)
    assert patches.direct_read_connection(association) is ours
    association.dul.socket.pending = bytearray(b"\x04")  # a GuardedSocket with bytes read ahead
    assert patches.direct_read_connection(association) is None
    association.dul.socket.pending = bytearray()
    association.bind(evt.EVT_PDU_RECV, lambda event: None)
    assert patches.direct_read_connection(association) is None
    association.unbind(evt.EVT_PDU_RECV, association.get_handlers(evt.EVT_PDU_RECV)[0])
    association.dimse.msg_queue.put((1, "a message already delivered"))
    assert patches.direct_read_connection(association) is None
    association.dimse.msg_queue.get_nowait()
    association.dul.state_machine.current_state = "Sta7"  # release requested
    assert patches.direct_read_connection(association) is None


@pytest.mark.parametrize("status", [0x0000, 0xB000, 0xA700, 0xC000])
def test_a_status_read_by_the_sender_is_what_pynetdicom_makes_of_the_response(status: int) -> None:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = 7
    primitive.Status = status
    made = Association(AE(), "requestor")._check_received_status(primitive)
    assert patches.status_of(status) == made
    assert patches.status_of(status) is patches.status_of(status)  # made once, shared


@contextlib.contextmanager
def storage_peer(on_store: Callable[[Any], Any]) -> Iterator[Association]:
    """An association requested as the archive requests a C-MOVE's (`REQUESTOR_HANDLERS`) to a
    pynetdicom Storage SCP in this process that answers with `on_store`."""
    patches.apply()
    archive = AE("PEER")
    archive.add_supported_context(CT_IMAGE, "1.2.840.10008.1.2.1")
    server = archive.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[*patches.CONNECTION_HANDLERS, (evt.EVT_C_STORE, on_store)]
    )
    assert server is not None
    try:
        requestor = AE("ARCHIVE")
        requestor.add_requested_context(CT_IMAGE, "1.2.840.10008.1.2.1")
        association = requestor.associate(
            "127.0.0.1", server.server_address[1], ae_title="PEER", evt_handlers=list(patches.REQUESTOR_HANDLERS)
        )
        assert association.is_established and patches.direct_store_installed(association)
        yield association
        if association.is_established:
            association.release()
    finally:
        server.shutdown()


def stored_image(association: Association, number: int, meanwhile: Callable[[], None] | None = None) -> Any:
    """`direct_store` of a small CT image as message `number`: its status Dataset."""
    from pydicom.dataset import Dataset as PydicomDataset

    image = PydicomDataset()
    image.SOPClassUID, image.SOPInstanceUID = CT_IMAGE, INSTANCE
    request = patches.StoreRequest(CT_IMAGE, INSTANCE, "1.2.840.10008.1.2.1", number)
    content = patches.StoreContent(data=encode(image, False, True))
    return patches.direct_store(association, request, content, meanwhile)


def test_retrieve_responses_are_read_by_the_sender_on_a_real_association() -> None:
    """Twenty C-STORE requests written by `direct_store` to a pynetdicom Storage SCP: the responses
    are read by the sending thread, not the DUL thread (which would count 20 if they were left to it)."""
    received: list[int] = []

    def on_store(event: Any) -> int:
        received.append(event.request.MessageID)
        return 0x0000

    with storage_peer(on_store) as association:
        reads = patches.dul_reads(association)
        statuses = [stored_image(association, number).Status for number in range(1, 21)]
        assert statuses == [0] * 20 and received == list(range(1, 21))
        # A response that comes before the sender holds the read lock is the DUL's (it then waits
        # for it as before): with the peer in this process that happens now and then, not often.
        assert reads >= 0 and 0 <= patches.dul_reads(association) - reads <= 10


def recognising(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int] | None]:
    """What each `UsualResponse.status_in` returns from now on, in a list."""
    answers: list[tuple[int, int] | None] = []
    original = patches.UsualResponse.status_in

    def status_in(usual: patches.UsualResponse, head: bytes) -> tuple[int, int] | None:
        answers.append(original(usual, head))
        return answers[-1]

    monkeypatch.setattr(patches.UsualResponse, "status_in", status_in)
    return answers


def test_a_pynetdicom_peer_s_responses_are_recognised_by_their_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = recognising(monkeypatch)
    with storage_peer(lambda event: 0xB000 if event.request.MessageID % 2 else 0x0000) as association:
        statuses = [stored_image(association, number).Status for number in range(1, 11)]
    assert statuses == [0xB000, 0x0000] * 5
    # A response the DUL reads first, or one the sender looks at before all of it came, is read the
    # usual way (with the peer in this process, now and then): the statuses above say it was read right.
    assert sum(answer is not None for answer in answers) >= 3


def test_what_the_sender_does_meanwhile_runs_once_the_request_is_written_and_before_its_response() -> None:
    """`direct_store(..., meanwhile)`: the sender reads the next object while the peer takes this
    one. Each time, the peer has the whole request (its handler waited for here: a `meanwhile`
    run before the writing would wait in vain), and the response is still read after."""
    received: list[int] = []
    handled = threading.Condition()

    def on_store(event: Any) -> int:
        with handled:
            received.append(event.request.MessageID)
            handled.notify_all()
        return 0xB000

    seen: list[int] = []

    def meanwhile(number: int) -> None:
        with handled:
            assert handled.wait_for(lambda: number in received, timeout=10)
        seen.append(number)

    with storage_peer(on_store) as association:
        statuses = [stored_image(association, number, functools.partial(meanwhile, number)).Status
                    for number in range(1, 6)]  # fmt: skip
    assert statuses == [0xB000] * 5 and seen == received == [1, 2, 3, 4, 5]


def test_a_sub_association_reactor_stays_paused_between_stores_until_the_release() -> None:
    """`held_reactor`: woken after each store and paused again before the next, the reactor took
    the interpreter lock from the sender once per image (C-MOVE of 200 CT images 204 -> 189 ms).

    Held after each response the sender read itself. A response the DUL thread read first is
    left to the reactor as before, which then runs until the next store: the DUL looks at its
    socket now and then, and with the peer in this process (sharing the interpreter lock) it
    finds the response first in a few stores in a hundred."""
    held_after: list[bool] = []
    with storage_peer(lambda event: 0x0000) as association:
        for number in range(1, 11):
            reads = patches.dul_reads(association)
            assert stored_image(association, number).Status == 0x0000
            read_by_sender = patches.dul_reads(association) == reads
            held = getattr(association, patches.HELD_ATTRIBUTE).held
            assert held == read_by_sender and association._reactor_checkpoint.is_set() == (not held)
            held_after.append(held)
        assert held_after.count(True) >= 5
        association.release()
        association.join(timeout=5)
        assert association.is_released and not association.is_alive()


def test_a_held_reactor_still_sees_the_peer_abort_between_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches, "HELD_LOOK_SECONDS", 0.02)
    peers: list[Association] = []

    def on_store(event: Any) -> int:
        peers.append(event.assoc)
        return 0x0000

    with storage_peer(on_store) as association:
        assert stored_image(association, 1).Status == 0x0000
        peers[0].abort()
        association.join(timeout=5)
        assert association.is_aborted and not association.is_alive()


def test_a_response_not_read_by_the_sender_leaves_the_reactor_running() -> None:
    """A response with an Error Comment is read the usual way (by the DUL, then the DIMSE queue):
    the reactor is no longer held after it."""
    from pydicom.dataset import Dataset as PydicomDataset

    def on_store(event: Any) -> Any:
        status = PydicomDataset()
        status.Status, status.ErrorComment = 0xC000, "cannot understand"
        return status

    with storage_peer(on_store) as association:
        assert stored_image(association, 1).Status == 0xC000
        assert association._reactor_checkpoint.is_set()
        assert not getattr(association, patches.HELD_ATTRIBUTE).held


def test_a_held_reactor_comes_out_to_look_but_not_during_a_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches, "HELD_LOOK_SECONDS", 0.01)
    association = SimpleNamespace(_reactor_checkpoint=threading.Event())
    held = patches.HeldReactor(association)
    checkpoint = association._reactor_checkpoint
    checkpoint.clear()  # a store: the reactor waits for its end
    waited: list[bool] = []
    reactor = threading.Thread(target=lambda: waited.append(checkpoint.wait()))
    reactor.start()
    reactor.join(timeout=0.2)
    assert reactor.is_alive()
    checkpoint.set()
    reactor.join(timeout=5)
    assert waited == [True]
    checkpoint.clear()
    held.hold()  # between stores: the reactor comes out to look
    started = time.monotonic()
    assert checkpoint.wait() is False and time.monotonic() - started < 1
    checkpoint.clear()  # a store starts: the hold is over
    assert not held.held and checkpoint.wait(0.05) is False


def test_the_dul_leaves_the_socket_to_a_sender_reading_its_responses(
    monkeypatch: pytest.MonkeyPatch, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    """After a response read by the sender, the DUL's idle sleep no longer ends when the socket
    becomes readable (woken only to wait for the read lock, it slowed the sender); it does end when
    something is queued for the DUL to send, or when the sender leaves it a PDU."""
    monkeypatch.setattr(patches, "QUIET_SECONDS", 0.3)
    monkeypatch.setattr(patches, "WAKE_POLL_SECONDS", 5.0)
    ours, theirs = tcp_pair
    association = sender(ours)
    patches.wake_on_arrival(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
    association.dul.socket._is_connected = True
    reads = getattr(association, patches.READ_LOCK_ATTRIBUTE)
    theirs.sendall(response_pdus(7))
    assert patches.direct_response(association, 1, 7, patches.dul_reads(association)) == (True, 0x0000)
    assert 0.2 < woken_after(association.dul, theirs.sendall, ABORT) < 2.5  # readable: slept on
    assert woken_after(association.dul, theirs.sendall, ABORT) < 0.2  # quiet over: readable ends the sleep
    reads.quiet()
    assert woken_after(association.dul, association.dul.to_provider_queue.put, "an A-RELEASE") < 0.2
    assert reads.quiet_seconds() == 0.0  # something to send: the DUL listens again
    assert unread(ours) == ABORT * 2
    reads.quiet()
    assert patches.direct_response(association, 1, 8, reads_before=-2) == (False, None)  # left to the DUL
    assert reads.quiet_seconds() == 0.0
    assert woken_after(association.dul, lambda: None) < 0.2  # woken by the sender (the socket is empty)


class LateMachine:
    """A DUL's state machine that reaches Sta1 at the `late`-th look at its state."""

    def __init__(self, late: int) -> None:
        self.looks, self.late = 0, late

    @property
    def current_state(self) -> str:
        self.looks += 1
        return "Sta1" if self.looks >= self.late else "Sta13"


def test_a_kill_waits_for_its_dul_only_until_the_dul_may_stop() -> None:
    """`prompt_kill`: the wait ends once the DUL is back in Sta1 (where `stop_dul` stops it), not
    after pynetdicom's whole sleep; a DUL that does not get there is waited for the whole sleep,
    and past the window after the first wait nothing is polled (False: the caller sleeps)."""
    machine = LateMachine(late=4)
    killed = SimpleNamespace(dul=SimpleNamespace(is_alive=lambda: True, state_machine=machine))
    assert patches.until_dul_stoppable(killed, 5.0) is True
    assert machine.looks == 4  # three polls, then Sta1: the wait is over
    killed = SimpleNamespace(dul=SimpleNamespace(is_alive=lambda: True, state_machine=LateMachine(late=10**9)))
    start = time.monotonic()
    assert patches.until_dul_stoppable(killed, 0.005) is True
    assert time.monotonic() - start >= 0.005
    time.sleep(patches.KILL_POLL_WINDOW_SECONDS)
    assert patches.until_dul_stoppable(killed, 0.005) is False
    ended = SimpleNamespace(dul=SimpleNamespace(is_alive=lambda: False, state_machine=LateMachine(late=10**9)))
    assert patches.until_dul_stoppable(ended, 5.0) is True  # at once: nothing left to stop


RELEASES_TRIED = 40  # a DUL that ended before `kill` looks is not asked: a third of the releases here


def test_a_release_whose_dul_is_not_idle_yet_waits_on_the_polled_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """A C-MOVE sub-association's release: once the A-RELEASE-RP is in, pynetdicom's `kill` asks
    the DUL to stop, which it only does back in Sta1; when the DUL had not yet got there, `kill`
    slept 10 ms before asking again, and the final C-MOVE response waited for it (half of the
    C-MOVEs of the compressed study, in the daemon). Here the first ask is refused, as when the DUL
    is late: the sleep that follows is `prompt_kill`'s, and the release ends with the DUL stopped."""
    waits: list[tuple[Any, float]] = []
    refused: list[Any] = []
    original_wait, original_stop = patches.until_dul_stoppable, DULServiceProvider.stop_dul

    def recorded(killed: Any, seconds: float) -> bool:
        waits.append((killed, seconds))
        return original_wait(killed, seconds)

    def stop_dul(provider: DULServiceProvider) -> bool:
        if provider.assoc.is_requestor and not refused:
            refused.append(provider)
            return False
        return bool(original_stop(provider))

    monkeypatch.setattr(patches, "until_dul_stoppable", recorded)
    monkeypatch.setattr(DULServiceProvider, "stop_dul", stop_dul)
    for _attempt in range(RELEASES_TRIED):
        with storage_peer(lambda _event: 0x0000) as association:
            association.release()
            assert association.is_released and not association.dul.is_alive()
        if refused:
            break
    assert refused == [association.dul]
    assert [seconds for killed, seconds in waits if killed is association] == [0.01]
