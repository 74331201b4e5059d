"""Introspection of the bus daemon and of org.freedesktop.DBus.Properties, written out.

Static because the mocks used in tests list no signals, and a service that is
not running yet cannot be introspected at all.  Shared by every watcher.
"""

from __future__ import annotations

from dbus_fast.introspection import Node

DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"

DBUS_XML = """
<node>
  <interface name="org.freedesktop.DBus">
    <method name="NameHasOwner">
      <arg direction="in" type="s"/>
      <arg direction="out" type="b"/>
    </method>
    <signal name="NameOwnerChanged">
      <arg type="s"/>
      <arg type="s"/>
      <arg type="s"/>
    </signal>
  </interface>
</node>
"""
DBUS_NODE = Node.parse(DBUS_XML)

PROPERTIES_XML = """
<node>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg direction="in" type="s"/>
      <arg direction="in" type="s"/>
      <arg direction="out" type="v"/>
    </method>
    <method name="GetAll">
      <arg direction="in" type="s"/>
      <arg direction="out" type="a{sv}"/>
    </method>
    <signal name="PropertiesChanged">
      <arg type="s"/>
      <arg type="a{sv}"/>
      <arg type="as"/>
    </signal>
  </interface>
</node>
"""
PROPERTIES_NODE = Node.parse(PROPERTIES_XML)

# Errors that mean "nobody owns that name and it cannot be activated".
ABSENT_ERRORS = frozenset(
    {
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
    }
)
