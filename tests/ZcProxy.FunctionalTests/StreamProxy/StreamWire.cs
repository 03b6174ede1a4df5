using System.Net.Sockets;
using System.Security.Cryptography;

namespace ZcProxy.Tests.StreamProxy;

/// <summary>Byte-stream helpers of the stream tests: BodyPattern bytes sent, everything received hashed.</summary>
public static class StreamWire
{
    public static async Task SendPatternAsync(Socket socket, long length, CancellationToken cancellationToken = default)
    {
        foreach (var piece in BodyPattern.Pieces(length)) await TcpOrigin.SendAllAsync(socket, piece, cancellationToken);
    }

    /// <summary>Everything until the peer's FIN: its length and sha256 (upper-case hex, as BodyPattern.Sha256).</summary>
    public static async Task<(long Length, string Sha)> ReceiveAllAsync(Socket socket, CancellationToken cancellationToken = default)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        long total = 0;
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            total += n;
        }
        return (total, Convert.ToHexString(hash.GetHashAndReset()));
    }

    /// <summary>
    /// An origin that sends <paramref name="length"/> pattern bytes (then FIN) while it reads the client's bytes to
    /// their FIN, reporting "LENGTH SHA" of what it read.
    /// </summary>
    public static TcpOrigin ExchangeOrigin(long length) => TcpOrigin.Start(async (socket, origin) =>
    {
        var receiving = ReceiveAllAsync(socket, origin.Stopping);
        await SendPatternAsync(socket, length, origin.Stopping);
        socket.Shutdown(SocketShutdown.Send);
        var (got, sha) = await receiving;
        origin.Reports.Enqueue($"{got} {sha}");
    });

    /// <summary>The client side of an exchange: sends <paramref name="length"/> bytes (then FIN) while reading to the FIN.</summary>
    public static async Task<(long Length, string Sha)> ExchangeAsync(Socket client, long length)
    {
        var receiving = ReceiveAllAsync(client);
        await SendPatternAsync(client, length);
        client.Shutdown(SocketShutdown.Send);
        return await receiving;
    }

    /// <summary>One echo round: sends <paramref name="text"/>, reads it back.</summary>
    public static async Task<string> EchoAsync(Socket client, string text)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(text);
        await TcpOrigin.SendAllAsync(client, bytes);
        var back = await TcpOrigin.ReceiveExactlyAsync(client, bytes.Length);
        return System.Text.Encoding.ASCII.GetString(back);
    }
}
