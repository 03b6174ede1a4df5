using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Tests.Forwarding;

/// <summary>YARP's path: an upload the upstream stopped reading lets HttpClient read the upstream's answer.</summary>
public class EarlyResponseStreamTests
{
    /// <summary>An upstream connection whose writes fail as a reset one does, counting the attempts.</summary>
    private sealed class ResetOnWrite(SocketError error) : MemoryStream
    {
        public int Writes { get; private set; }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writes++;
            return ValueTask.FromException(new IOException("write failed", new SocketException((int)error)));
        }
    }

    private static DefaultHttpContext Upload(long? contentLength, string protocol = "HTTP/1.1")
    {
        var context = new DefaultHttpContext();
        context.Request.Protocol = protocol;
        context.Request.ContentLength = contentLength;
        return context;
    }

    [Theory]
    [InlineData(SocketError.ConnectionReset)]
    [InlineData(SocketError.Shutdown)]
    public async Task WriteRefusedByTheUpstream_DuringAWatchedUpload_IsDiscardedFromThenOn(SocketError error)
    {
        var context = Upload(10);
        var body = new EarlyResponseBody(new MemoryStream(new byte[10]), context);
        var connection = new ResetOnWrite(error);
        await using var stream = new EarlyResponseConnectionStream(connection);

        EarlyResponseBody.Current = body;
        await stream.WriteAsync(new byte[4]);
        await stream.WriteAsync(new byte[4]);
        await stream.FlushAsync();

        Assert.Equal(1, connection.Writes);
        Assert.True(body.UpstreamStopped);
        Assert.Equal("close", context.Response.Headers.Connection.ToString());
    }

    [Fact]
    public async Task WriteFailure_OutsideAWatchedUpload_OrNotARefusal_IsThrown()
    {
        await using var unwatched = new EarlyResponseConnectionStream(new ResetOnWrite(SocketError.ConnectionReset));
        EarlyResponseBody.Current = null;
        await Assert.ThrowsAsync<IOException>(async () => await unwatched.WriteAsync(new byte[4]));

        EarlyResponseBody.Current = new EarlyResponseBody(new MemoryStream(), Upload(10));
        await using var timedOut = new EarlyResponseConnectionStream(new ResetOnWrite(SocketError.TimedOut));
        await Assert.ThrowsAsync<IOException>(async () => await timedOut.WriteAsync(new byte[4]));
    }

    [Fact]
    public async Task BodyAfterTheUpstreamStopped_CompletesTheDeclaredLengthWithZeros_WithoutReadingTheClient()
    {
        var client = new MemoryStream(Enumerable.Repeat((byte)7, 10).ToArray());
        var body = new EarlyResponseBody(client, Upload(10));
        var buffer = new byte[4];
        Assert.Equal(4, await body.ReadAsync(buffer));

        body.UpstreamStoppedReading();
        buffer = [9, 9, 9, 9];
        Assert.Equal(4, await body.ReadAsync(buffer));
        Assert.Equal(new byte[4], buffer); // no stale bytes handed on
        Assert.Equal(2, await body.ReadAsync(buffer));
        Assert.Equal(0, await body.ReadAsync(buffer));
        Assert.Equal(4, client.Position); // the client's rest stays unread
    }

    [Fact]
    public async Task ChunkedBodyAfterTheUpstreamStopped_Ends_AndHttp2ClientsGetNoConnectionField()
    {
        var context = Upload(null, "HTTP/2");
        var body = new EarlyResponseBody(new MemoryStream(new byte[10]), context);
        body.UpstreamStoppedReading();
        Assert.Equal(0, await body.ReadAsync(new byte[4]));
        Assert.False(context.Response.Headers.ContainsKey("Connection"));
    }
}
