using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Connections;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Which endpoints ZcProxy's transport serves. <see cref="ZeroCopyEndPoint"/>s are claimed by their type; listeners
/// that Kestrel builds its own endpoints for are claimed by value: `localhost:port` (Kestrel binds 127.0.0.1 and
/// [::1] itself) and socket-activated fds (<see cref="FileHandleEndPoint"/>).
/// </summary>
internal sealed class ZeroCopyListenerClaims
{
    private readonly ConcurrentDictionary<int, bool> _localhostPorts = new();
    private readonly ConcurrentDictionary<ulong, bool> _handles = new();

    public void ClaimLocalhost(int port) => _localhostPorts[port] = true;
    public void ClaimHandle(ulong fd) => _handles[fd] = true;

    public bool Claims(EndPoint endPoint) => endPoint switch
    {
        ZeroCopyEndPoint => true,
        IPEndPoint ip => IPAddress.IsLoopback(ip.Address) && ip.Port != 0 && _localhostPorts.ContainsKey(ip.Port),
        FileHandleEndPoint handle => _handles.ContainsKey(handle.FileHandle),
        _ => false,
    };
}
