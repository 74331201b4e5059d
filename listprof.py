import time, statistics
from dbus_fast import Variant, Message, MessageType
from dbus_fast._private.unmarshaller import Unmarshaller
import io
from borgd.dbus.types import to_variants, ARCHIVE_KEYS
rows = [dict(name=f"p{i%2}-{i:05d}", id=f"{i:064x}", repository="r0", profile="p0", start=1700000000000000+i, end=1700000000000000+i,
 nfiles=1000+i, original_size=10**9+i, compressed_size=5*10**8, deduplicated_size=10**6+i, comment="", job_id=0, checkpoint=False) for i in range(1000)]
def t(f, n=20):
    ts=[]
    for _ in range(n):
        a=time.perf_counter(); r=f(); ts.append(time.perf_counter()-a)
    return statistics.median(ts)*1000, r
ms, body = t(lambda: [to_variants(r, ARCHIVE_KEYS) for r in rows])
print("to_variants", ms)
def mk():
    return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1, destination=":1.1", signature="aa{sv}", body=[body])
ms, msg = t(lambda: mk()._marshall(False))
print("marshall", ms, len(msg))
def un():
    u = Unmarshaller(io.BytesIO(msg)); return u.unmarshall()
ms,_ = t(un); print("unmarshall", ms)
