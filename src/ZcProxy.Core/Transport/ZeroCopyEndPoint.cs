using System.Net;

namespace ZcProxy.Core.Transport;

/// <summary>
/// An IP endpoint that ZcProxy's own transport serves (<see cref="ZeroCopyListenerFactory"/> claims it): plaintext
/// proxy listeners with ZeroCopy.Enabled. Kestrel passes the ListenOptions' endpoint object to the factories'
/// CanBind, so the type is the claim; every other endpoint stays with Kestrel's socket transport.
/// </summary>
internal sealed class ZeroCopyEndPoint(IPAddress address, int port) : IPEndPoint(address, port);
