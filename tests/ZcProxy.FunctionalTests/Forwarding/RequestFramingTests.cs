using System.Net.Sockets;
using System.Text;
using Xunit.Abstractions;

namespace ZcProxy.Tests.Forwarding;

/// <summary>
/// Request framing the proxy must not guess at (RFC 9112 §6; what nginx and HAProxy reject), and a request-smuggling
/// corpus: for every case the proxy either answers 400 and closes the connection, or forwards exactly one well-framed
/// request; the origin never sees the request hidden behind it (/smuggled-N). Both forwarders parse requests with
/// Kestrel, so both run every case.
/// </summary>
public class RequestFramingTests(ITestOutputHelper output)
{
    private enum Expect { Reject, Forward, Either }

    /// <param name="Body">The body the origin must receive when the case is forwarded (null: not checked).</param>
    private sealed record Case(string Name, Expect Expect, string Request, string? Body = null);

    private const string Smuggled = "GET /smuggled-{n} HTTP/1.1\r\nHost: x\r\n\r\n";
    /// <summary>A request carried as body data (fixed text: its length frames it).</summary>
    private const string InBody = "GET /smuggled-inbody HTTP/1.1\r\nHost: x\r\n\r\n";
    private static readonly string InBodyChunkSize = InBody.Length.ToString("x", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>"{n}" stands for the case's number (in /first-{n} and /smuggled-{n}). Strings are one char per byte.</summary>
    private static readonly Case[] Corpus =
    [
        // The three of issue 11 item 12.
        new("content-length with a sign", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" + Smuggled),
        new("identity before chunked", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("0x01 in a field name", Expect.Reject, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nX-A\u0001b: 1\r\n\r\n" + Smuggled),
        // Content-Length variants.
        new("content-length -0", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n" + Smuggled),
        new("content-length in hex", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello" + Smuggled),
        new("content-length with an inner space", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 1 5\r\n\r\nhello" + Smuggled),
        new("content-length overflowing", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\nhello" + Smuggled),
        new("two different content-lengths", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 42\r\n\r\nhello" + Smuggled),
        new("two equal content-lengths", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + Smuggled),
        new("content-length list", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello" + Smuggled),
        new("content-length with leading zeros", Expect.Forward, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\nhello", "hello"),
        new("content-length with whitespace around", Expect.Forward, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: \t5 \r\n\r\nhello", "hello"),
        new("a GET whose body looks like a request", Expect.Forward,
            $"GET /first-{{n}} HTTP/1.1\r\nHost: x\r\nContent-Length: {InBody.Length}\r\n\r\n" + InBody, InBody),
        // CL.TE and TE.CL: Transfer-Encoding wins, the connection closes after the response (RFC 9112 §6.3).
        new("CL.TE", Expect.Either, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + Smuggled, ""),
        new("TE.CL", Expect.Either, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
            + InBodyChunkSize + "\r\n" + InBody + "\r\n0\r\n\r\n", InBody),
        // Transfer-Encoding obfuscations.
        new("chunked twice in one field", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("chunked in two fields", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("gzip before chunked", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("chunked not last", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("xchunked", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("quoted chunked", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("space before the colon", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("vertical tab before chunked", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\u000Bchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("chunked in HTTP/1.0", Expect.Reject, "POST /first-{n} HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("Chunked in capitals", Expect.Forward, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello"),
        new("an empty list element before chunked", Expect.Forward, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello"),
        new("Transfer_Encoding with an underscore", Expect.Forward, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n" + Smuggled, ""),
        // Line endings and folding.
        new("bare LF line endings", Expect.Forward, "GET /first-{n} HTTP/1.1\nHost: x\n\n", ""),
        new("bare CR in a value", Expect.Reject, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" + Smuggled),
        new("obs-fold", Expect.Reject, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n" + Smuggled),
        new("obs-fold hiding Transfer-Encoding", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\nhello" + Smuggled),
        // NUL and other control bytes.
        new("NUL in a value", Expect.Reject, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n" + Smuggled),
        new("NUL in a name", Expect.Reject, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nX-\u0000A: 1\r\n\r\n" + Smuggled),
        new("vertical tab in a value", Expect.Reject, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nX-A: a\u000Bb\r\n\r\n" + Smuggled),
        new("DEL in a value", Expect.Reject, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nX-A: a\u007Fb\r\n\r\n" + Smuggled),
        new("a quote in a name", Expect.Reject, "GET /first-{n} HTTP/1.1\r\nHost: x\r\nX-\"A: 1\r\n\r\n" + Smuggled),
        // Chunk framing.
        new("oversized chunk size", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("negative chunk size", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n" + Smuggled),
        new("chunk without its CRLF", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" + Smuggled),
        new("chunk lines with bare LF", Expect.Reject, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n" + Smuggled),
        new("chunk extension", Expect.Forward, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"q\"\r\nhello\r\n0\r\n\r\n", "hello"),
        new("trailer section", Expect.Forward, "POST /first-{n} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", "hello"),
    ];

    private static async Task<bool> Answer(RawRequest request, Socket socket)
    {
        await RawSocketOrigin.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        return true;
    }

    /// <summary>The three requests of issue 11 item 12 get 400 and a closed connection; before, all three were forwarded.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task SignedContentLength_CodingsBeforeChunked_AndControlBytesInNames_AreRejected(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, Answer);
        var failures = new List<string>();
        for (int n = 0; n < 3; n++) await RunAsync(rig, Corpus[n], n, failures);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Empty(rig.Received);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task SmugglingCorpus_IsRejectedOrForwardedAsExactlyOneRequest(bool zeroCopy)
    {
        await using var rig = await WireRig.StartAsync(zeroCopy, Answer);
        var failures = new List<string>();
        for (int n = 0; n < Corpus.Length; n++) await RunAsync(rig, Corpus[n], n, failures);

        foreach (var request in rig.Received)
            if (request.Target.StartsWith("/smuggled-", StringComparison.Ordinal))
                failures.Add($"the origin received {request.Target}, the request hidden behind a case");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        rig.AssertForwardingPath();
    }

    /// <summary>
    /// Sends one case, reads the answer, then a sentinel request on the same connection (if still open): a request
    /// smuggled behind the case would be parsed before the sentinel and reach the origin.
    /// </summary>
    private async Task RunAsync(WireRig rig, Case c, int n, List<string> failures)
    {
        var request = c.Request.Replace("{n}", n.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        var (socket, reader) = await rig.ConnectAsync();
        using (socket)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await socket.SendAsync(Encoding.Latin1.GetBytes(request).AsMemory());
            int status;
            try { status = (await reader.ReadResponseAsync(cancellationToken: timeout.Token)).Status; }
            catch (Exception e) when (e is EndOfStreamException or SocketException or IOException) { status = 0; }

            string? next;
            try
            {
                await socket.SendAsync(Encoding.Latin1.GetBytes($"GET /sentinel-{n} HTTP/1.1\r\nHost: x\r\n\r\n").AsMemory());
                next = (await reader.ReadResponseAsync(cancellationToken: timeout.Token)).Status.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is EndOfStreamException or SocketException or IOException) { next = null; }

            var first = rig.Received.Where(r => r.Target == $"/first-{n}").ToList();
            bool rejected = status == 400 && next is null && first.Count == 0;
            bool forwarded = status == 200 && first.Count == 1 && (c.Body is null || Encoding.Latin1.GetString(first[0].Body) == c.Body);
            bool ok = c.Expect switch
            {
                Expect.Reject => rejected,
                Expect.Forward => forwarded,
                _ => rejected || forwarded,
            };
            var outcome = $"case {n} '{c.Name}': expected {c.Expect}, got {status} (then {next ?? "connection closed"}), "
                + $"origin saw /first-{n} {first.Count} time(s){(first.Count == 1 ? $" with body '{Encoding.Latin1.GetString(first[0].Body)}'" : "")}";
            output.WriteLine(outcome);
            if (!ok) failures.Add(outcome);
        }
    }
}
