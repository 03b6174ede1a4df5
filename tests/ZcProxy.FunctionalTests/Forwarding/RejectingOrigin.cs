using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ZcProxy.Native;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// An origin that reads each request's head only and leaves its body unread: it answers 413 and closes (which resets
/// the connection, the body being unread), or with <c>answer: false</c> resets it without a word. With a certificate
/// it speaks HTTP/1.1 over TLS.
/// </summary>
/// <remarks>
/// A close with unread data resets at once and drops whatever the origin's kernel has not sent yet: the answer must be
/// acknowledged by the proxy's kernel before the close, or the proxy never sees it. Over TLS it was sometimes held
/// back by Nagle behind the session tickets (sent late when the request followed the handshake closely, and not yet
/// acknowledged) and lost with the reset: the proxy read the end of the connection and answered 502.
/// </remarks>
internal sealed class RejectingOrigin : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly bool _answer;
    private readonly X509Certificate2? _certificate;
    private int _answered;

    public RejectingOrigin(bool answer = true, X509Certificate2? certificate = null)
    {
        _answer = answer;
        _certificate = certificate;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
        _ = AcceptLoopAsync();
    }

    public string Url => $"{(_certificate is null ? "http" : "https")}://{_listener.LocalEndPoint}/";
    public int Answered => Volatile.Read(ref _answered);

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try { socket = await _listener.AcceptAsync(); } catch { return; }
            _ = Task.Run(async () =>
            {
                using (socket)
                {
                    socket.NoDelay = true; // the answer leaves at once, not after the proxy's (delayed) ack of earlier bytes
                    Stream stream = new NetworkStream(socket, ownsSocket: false);
                    if (_certificate is not null)
                    {
                        var tls = new SslStream(stream);
                        await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                        {
                            ServerCertificate = _certificate,
                            ApplicationProtocols = [SslApplicationProtocol.Http11],
                        });
                        stream = tls;
                    }
                    var buffer = new byte[16 * 1024];
                    var head = new List<byte>();
                    while (head.Count < 64 * 1024)
                    {
                        int n = await stream.ReadAsync(buffer.AsMemory(0, 1)); // byte by byte: leave the body unread
                        if (n == 0) return;
                        head.Add(buffer[0]);
                        if (head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n') break;
                    }
                    if (!_answer)
                    {
                        socket.LingerState = new LingerOption(true, 0); // close = RST
                        return;
                    }
                    await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!").AsMemory());
                    await stream.FlushAsync();
                    int fd = (int)socket.SafeHandle.DangerousGetHandle();
                    await Poll.UntilAsync(() => Syscalls.BytesUnacknowledged(fd) <= 0, "the proxy's kernel acknowledged the answer");
                    Interlocked.Increment(ref _answered);
                } // closed with the request body unread: a reset, which no longer drops the answer
            });
        }
    }

    public ValueTask DisposeAsync()
    {
        _listener.Dispose();
        return ValueTask.CompletedTask;
    }
}
