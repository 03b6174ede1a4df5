namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// What the tunnel of an upgraded connection (101 Switching Protocols on the zero-copy path) moved, set on the request's
/// features when it ended: the access log reports these bytes for the 101 line.
/// </summary>
/// <param name="End">How it ended: the reason label of zcproxy_upgraded_connections_total.</param>
internal sealed record UpgradedConnection(string End, long RequestBytes, long ResponseBytes);
