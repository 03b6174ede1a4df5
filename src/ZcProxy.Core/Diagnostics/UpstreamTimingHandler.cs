using System.Diagnostics;
using System.Net.Sockets;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Times YARP's upstream exchanges: wraps its HttpClient handler, so the response head's arrival (SendAsync returns
/// at the head: YARP reads bodies as a stream) and new connections (the handler's connect callback) reach the
/// request's <see cref="UpstreamTiming"/>, carried on the request message's options.
/// </summary>
internal sealed class UpstreamTimingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        if (request.Options.TryGetValue(UpstreamTiming.OptionKey, out var timing)) timing.HeadReceived();
        return response;
    }

    /// <summary>
    /// SocketsHttpHandler's own connect (a TCP socket with Nagle off), timed: the time goes to the request that caused
    /// the connection. A connection may end up serving another request of the pool; the time is still a connect time.
    /// </summary>
    public static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        if (context.InitialRequestMessage.Options.TryGetValue(UpstreamTiming.OptionKey, out var timing))
            timing.Connected(Stopwatch.GetElapsedTime(start));
        return new NetworkStream(socket, ownsSocket: true);
    }
}
