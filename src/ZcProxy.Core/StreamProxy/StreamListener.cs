using System.Net;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// One stream's listening socket and accept loop. Each accepted connection becomes a <see cref="StreamSession"/> on the
/// next event loop, with the settings in force when it was accepted: a reload that changes them (cluster, timeouts,
/// PROXY protocol) applies to later connections, and stopping the listener leaves its connections running.
/// </summary>
internal sealed class StreamListener
{
    private readonly StreamProxyService _proxy;
    private readonly LoopListener _listener;
    private readonly Task _accepting;
    private volatile StreamOptions _settings;

    private StreamListener(StreamProxyService proxy, string name, StreamOptions settings, LoopListener listener)
    {
        _proxy = proxy;
        Name = name;
        _settings = settings;
        _listener = listener;
        _accepting = Task.Run(AcceptLoopAsync);
    }

    public string Name { get; }
    public StreamOptions Settings { get => _settings; set => _settings = value; }
    public IPEndPoint LocalEndPoint => _listener.LocalEndPoint;

    /// <summary>Binds the stream's address (throws when it cannot: address in use, not local, ...) and starts accepting.</summary>
    public static StreamListener Start(StreamProxyService proxy, string name, StreamOptions settings, IPEndPoint endPoint)
        => new(proxy, name, settings, LoopListener.Bind(endPoint, proxy.Loops.All[0], proxy.ListenerLog));

    /// <summary>Stops accepting and closes the listening socket; connections already accepted go on.</summary>
    public async Task StopAsync()
    {
        await _listener.UnbindAsync();
        await _accepting;
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            AcceptedSocket? accepted;
            try { accepted = await _listener.AcceptAsync(); }
            catch (Exception e)
            {
                _proxy.AcceptFailed(Name, e);
                return;
            }
            if (accepted is not { } connection) return;
            _proxy.Launch(new StreamSession(_proxy, Name, _settings, connection, _proxy.Loops.Next()));
        }
    }
}
