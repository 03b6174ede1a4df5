using System.IO.Pipelines;
using System.Text;
using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// The tap keeps what Kestrel consumed of a request head and finds the head by its request line. These tests drive
/// it like Kestrel does: heads consumed in whole lines (possibly over several reads), bodies in arbitrary pieces.
/// </summary>
public class RequestHeadTapTests
{
    private readonly Pipe _pipe = new();
    private readonly RequestHeadTap _tap;

    public RequestHeadTapTests() => _tap = new RequestHeadTap(_pipe.Reader, 64 * 1024);

    /// <summary>Writes <paramref name="text"/> (one char per byte) and consumes it in pieces of the given lengths.</summary>
    private async Task ConsumeAsync(string text, params int[] pieces)
    {
        await _pipe.Writer.WriteAsync(Encoding.Latin1.GetBytes(text));
        Assert.Equal(text.Length, pieces.Sum());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)); // never hang the suite
        foreach (var piece in pieces)
        {
            var result = await _tap.ReadAsync(timeout.Token);
            _tap.AdvanceTo(result.Buffer.GetPosition(piece));
        }
    }

    [Fact]
    public async Task AHeadConsumedLineByLine_GivesTheConnectionFieldAsSent()
    {
        const string head = "GET /a?b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop\r\nconnection:  x-two \r\n\r\n";
        await ConsumeAsync(head, 19, 9, 31, 21, 2);

        var field = _tap.TakeConnectionField("GET", "/a?b", "HTTP/1.1");

        Assert.NotNull(field);
        Assert.Equal("keep-alive, X-Hop|x-two", string.Join("|", field.Value.ToArray()));
    }

    [Fact]
    public async Task AFakeHeadInsideTheBodyBefore_IsNotTakenForTheHead()
    {
        // The first request's body ends with a line that looks like the next head; the real next head follows.
        const string first = "POST /a HTTP/1.1\r\nContent-Length: 51\r\n\r\n";
        const string body = "GET /b HTTP/1.1\r\nConnection: X-Forwarded-For\r\n\r\nxx\n";
        const string second = "GET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
        await ConsumeAsync(first, first.Length);
        Assert.Equal(0, _tap.TakeConnectionField("POST", "/a", "HTTP/1.1")!.Value.Count);
        await ConsumeAsync(body + second, body.Length, second.Length);

        Assert.Equal("close", _tap.TakeConnectionField("GET", "/b", "HTTP/1.1")!.Value.ToString());
    }

    [Fact]
    public async Task BodyBytesNotEndingALine_DropWhatWasKept()
    {
        await ConsumeAsync("GET /c HTTP/1.1\r\nConnection: X-Hop\r\n\r\n", 38);
        await ConsumeAsync("binary body", 11); // a body piece: nothing before it can be a later head

        Assert.Null(_tap.TakeConnectionField("GET", "/c", "HTTP/1.1"));
    }

    [Fact]
    public async Task AHeadThatWasNeverSeen_GivesNull_AndTakingFreesTheKeptBytes()
    {
        await ConsumeAsync("GET /d HTTP/1.1\r\nConnection: X-Hop\r\n\r\n", 38);

        Assert.Null(_tap.TakeConnectionField("GET", "/other", "HTTP/1.1"));
        Assert.Null(_tap.TakeConnectionField("GET", "/d", "HTTP/1.1")); // freed by the first call
    }
}
