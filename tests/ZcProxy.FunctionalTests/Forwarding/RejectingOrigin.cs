using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// An origin that reads each request's head only and leaves its body unread: it answers 413 and closes (which resets
/// the connection, the body being unread), or with <c>answer: false</c> resets it without a word. With a certificate
/// it speaks HTTP/1.1 over TLS.
/// </summary>
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
                    Interlocked.Increment(ref _answered);
                } // closed with the request body unread
            });
        }
    }

    public ValueTask DisposeAsync()
    {
        _listener.Dispose();
        return ValueTask.CompletedTask;
    }
}
