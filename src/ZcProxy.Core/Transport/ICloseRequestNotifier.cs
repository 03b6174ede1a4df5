namespace ZcProxy.Core.Transport;

/// <summary>
/// A connection's lifetime-notification feature that also tells one listener of the server's close request (graceful
/// stop) by a call rather than through its token: the listener then holds no registration, and the feature no source,
/// while the connection idles (192 B per idle connection). ZcProxy's HTTP/1.1 layer listens this way; Kestrel's reads
/// the token.
/// </summary>
internal interface ICloseRequestNotifier
{
    /// <summary>
    /// From now on <paramref name="listener"/> is told of the close request, once (at once if it came already); null
    /// stops telling the previous one.
    /// </summary>
    void Listen(ICloseRequestListener? listener);
}

/// <summary>Told of a connection's close request by <see cref="ICloseRequestNotifier"/>.</summary>
internal interface ICloseRequestListener
{
    void OnCloseRequested();
}
