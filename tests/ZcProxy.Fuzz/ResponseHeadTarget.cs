using System.Text;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Fuzz;

/// <summary>
/// <see cref="ResponseHeadParser"/>: the upstream's status line and header fields. Invariants, beyond "never throws":
/// - Complete: the head ends with CRLFCRLF inside the input and within the size limit; status 100-599; the framing and
///   Content-Length agree (a length only with ContentLength framing, none for HEAD/1xx/204/304, chunked only in
///   HTTP/1.1, never both); a close-delimited body is never keep-alive; names are tokens, values free of CR/LF/NUL;
/// - the parser is fed "everything received so far", so its answers over growing prefixes must be Incomplete until
///   they become Complete or Invalid, and then stay exactly that (same head) for every longer prefix.
/// Runs with the default limits and, for half the inputs, small ones (256 bytes, 4 fields) so the limits are hit; a
/// quarter of the inputs answer a HEAD request.
/// </summary>
internal sealed class ResponseHeadTarget : IFuzzTarget
{
    private static readonly ResponseHeadLimits Small = new() { MaxHeadBytes = 256, MaxHeaderCount = 4 };

    public string Name => "response-head";

    public IReadOnlyList<byte[]> Tokens { get; } = [.. new[]
    {
        "\r\n", "\n", "\r", "\r\n\r\n", "\n\n", ":", ": ", " :", " ", "\t", "\0", "\x7f", "\xff", ",", ", ", " ,",
        "HTTP/1.1 ", "HTTP/1.0 ", "HTTP/1.2 ", "HTTP/2 ", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 100 Continue\r\n\r\n",
        "Content-Length: ", "content-length:", "Content-Length: 5\r\n", "Content-Length: 5, 5\r\n", "Content-Length: 5, 6\r\n",
        "Content-Length: -1\r\n", "Content-Length: 99999999999999999999\r\n", "Content-Length : 5\r\n", " Content-Length: 5\r\n",
        "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: \r\n", "Transfer-Encoding: ,\r\n", "transfer-encoding: CHUNKED\r\n",
        "Connection: close\r\n", "Connection: keep-alive\r\n", "Connection: Keep-Alive, close\r\n",
        "X: a\r\n b\r\n", "204 ", "304 ", "101 ", "199 ", "099 ", "600 ", "20 ", "2000 ",
    }.Select(Encoding.Latin1.GetBytes)];

    public IReadOnlyList<byte[]> Seeds(Random random)
    {
        var fixedSeeds = new[]
        {
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.0 404 \r\nServer: origin\r\n\r\nnot found, close-delimited",
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\nVia: 1.1 a, 1.1 b\r\n\r\nbad",
        };
        var seeds = fixedSeeds.Select(Encoding.Latin1.GetBytes).ToList();
        for (int i = 0; i < 64; i++) seeds.Add(Generate(random));
        return seeds;
    }

    /// <summary>A random valid head: status, version, 0-12 fields of the kinds that matter for framing, and some body.</summary>
    private static byte[] Generate(Random random)
    {
        var sb = new StringBuilder();
        int[] statuses = [100, 101, 200, 201, 204, 206, 301, 304, 404, 500, 502, 599];
        sb.Append(random.Next(4) == 0 ? "HTTP/1.0 " : "HTTP/1.1 ").Append(statuses[random.Next(statuses.Length)]).Append(' ');
        sb.Append(random.Next(3) == 0 ? "" : "Reason phrase\t\x80").Append("\r\n");
        for (int n = random.Next(13); n > 0; n--)
        {
            sb.Append(random.Next(8) switch
            {
                0 => $"Content-Length: {random.Next(100_000)}",
                1 => "Transfer-Encoding: chunked",
                2 => random.Next(2) == 0 ? "Connection: close" : "Connection: keep-alive",
                3 => $"X-{random.Next(1000)}:{new string(' ', random.Next(3))}v{random.Next()}{new string('\t', random.Next(2))}",
                4 => "Set-Cookie: a=b; Path=/; HttpOnly",
                5 => $"Date: Mon, 0{random.Next(10)} Jan 2026 00:00:00 GMT",
                6 => "Cache-Control: max-age=60, public",
                _ => "Vary: Accept-Encoding",
            }).Append("\r\n");
        }
        sb.Append("\r\n").Append(new string('b', random.Next(32)));
        return Encoding.Latin1.GetBytes(sb.ToString());
    }

    public void Run(ReadOnlySpan<byte> input)
    {
        // Chosen from the input itself, so a saved input replays exactly and AFL sees a deterministic target.
        uint variant = StableHash.Of(input);
        var limits = (variant & 1) == 0 ? ResponseHeadLimits.Default : Small;
        bool requestWasHead = (variant & 6) == 6;
        var full = ResponseHeadParser.Parse(input, requestWasHead, limits);
        CheckResult(full, input, requestWasHead, limits);

        // Growing prefixes: a few random cut points, plus both sides of where the answer was decided.
        int decidedAt = full.Status == ResponseHeadParseStatus.Complete ? full.Head!.HeadLength : -1;
        Span<int> cuts = [0, input.Length / 3, input.Length / 2, input.Length - 1, decidedAt - 1, decidedAt, decidedAt + 1];
        var previous = ResponseHeadParseStatus.Incomplete;
        ResponseHeadParseResult previousResult = default;
        cuts.Sort();
        foreach (int cut in cuts)
        {
            if (cut < 0 || cut > input.Length) continue;
            var partial = ResponseHeadParser.Parse(input[..cut], requestWasHead, limits);
            CheckResult(partial, input[..cut], requestWasHead, limits);
            if (previous != ResponseHeadParseStatus.Incomplete && !Same(previousResult, partial))
                throw new FuzzFinding($"answer changed after it was decided: {Describe(previousResult)} at a shorter prefix, {Describe(partial)} at {cut} bytes");
            if (partial.Status != ResponseHeadParseStatus.Incomplete && !Same(partial, full))
                throw new FuzzFinding($"a prefix of {cut} bytes decided {Describe(partial)} but the whole input gives {Describe(full)}");
            if (cut >= decidedAt && decidedAt >= 0 && partial.Status != ResponseHeadParseStatus.Complete)
                throw new FuzzFinding($"the head is complete at {decidedAt} bytes but {cut} bytes give {Describe(partial)}");
            previous = partial.Status;
            previousResult = partial;
        }
    }

    private static void CheckResult(ResponseHeadParseResult result, ReadOnlySpan<byte> input, bool requestWasHead, ResponseHeadLimits limits)
    {
        switch (result.Status)
        {
            case ResponseHeadParseStatus.Incomplete:
                if (result.Head is not null || result.Error is not null) throw new FuzzFinding("Incomplete with a head or an error");
                if (input.Length > limits.MaxHeadBytes) throw new FuzzFinding($"Incomplete after {input.Length} bytes, over the {limits.MaxHeadBytes}-byte limit");
                return;
            case ResponseHeadParseStatus.Invalid:
                if (string.IsNullOrEmpty(result.Error) || result.Head is not null) throw new FuzzFinding("Invalid without an error message");
                return;
        }
        var head = result.Head ?? throw new FuzzFinding("Complete without a head");
        if (head.HeadLength < 17 || head.HeadLength > input.Length || head.HeadLength > limits.MaxHeadBytes)
            throw new FuzzFinding($"HeadLength {head.HeadLength} outside the input ({input.Length}) or the limit");
        if (!input[(head.HeadLength - 4)..head.HeadLength].SequenceEqual("\r\n\r\n"u8))
            throw new FuzzFinding("the head does not end with CRLFCRLF");
        if (input[..head.HeadLength].IndexOf("\r\n\r\n"u8) != head.HeadLength - 4)
            throw new FuzzFinding("the head does not end at the first empty line");
        if (head.StatusCode is < 100 or > 599) throw new FuzzFinding($"status {head.StatusCode}");
        if (head.MinorVersion is not (0 or 1)) throw new FuzzFinding($"HTTP/1.{head.MinorVersion}");
        if (head.Headers.Count > limits.MaxHeaderCount) throw new FuzzFinding($"{head.Headers.Count} fields over the limit");
        foreach (var (name, value) in head.Headers)
        {
            if (name.Length == 0 || name.Any(c => c <= ' ' || c is ':' or '\x7f' or >= '\x80')) throw new FuzzFinding($"field name '{name}'");
            if (value.Any(c => c is '\r' or '\n' or '\0')) throw new FuzzFinding($"field value with CR/LF/NUL in '{name}'");
            if (value.Length > 0 && (value[0] is ' ' or '\t' || value[^1] is ' ' or '\t')) throw new FuzzFinding($"untrimmed value of '{name}'");
        }
        bool noBody = requestWasHead || head.StatusCode is < 200 or 204 or 304;
        if (noBody && head.Framing != BodyFraming.None) throw new FuzzFinding($"{head.Framing} body for status {head.StatusCode} (HEAD: {requestWasHead})");
        if ((head.Framing == BodyFraming.ContentLength) != (head.ContentLength >= 0)) throw new FuzzFinding($"{head.Framing} with ContentLength {head.ContentLength}");
        bool hasTransferEncoding = head.Headers.Any(h => h.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase));
        bool hasContentLength = head.Headers.Any(h => h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase));
        if (hasTransferEncoding && hasContentLength) throw new FuzzFinding("accepted both Content-Length and Transfer-Encoding");
        if (hasTransferEncoding && head.MinorVersion == 0) throw new FuzzFinding("accepted Transfer-Encoding in HTTP/1.0");
        if (head.Framing == BodyFraming.Chunked && !hasTransferEncoding) throw new FuzzFinding("chunked without Transfer-Encoding");
        if (head.Framing == BodyFraming.ContentLength && !hasContentLength) throw new FuzzFinding("a length without Content-Length");
        if (!noBody && hasContentLength && head.Framing != BodyFraming.ContentLength) throw new FuzzFinding($"Content-Length present but framing {head.Framing}");
        if (!noBody && hasTransferEncoding && head.Framing != BodyFraming.Chunked) throw new FuzzFinding($"Transfer-Encoding present but framing {head.Framing}");
        if (head.Framing == BodyFraming.CloseDelimited && head.KeepAlive) throw new FuzzFinding("a close-delimited body on a keep-alive connection");
    }

    /// <summary>The same decision and head; the error text may differ (a longer prefix can break a limit first).</summary>
    private static bool Same(ResponseHeadParseResult a, ResponseHeadParseResult b) =>
        a.Status == b.Status && (a.Head is null) == (b.Head is null)
        && (a.Head is null || (a.Head.HeadLength == b.Head!.HeadLength && a.Head.StatusCode == b.Head.StatusCode
            && a.Head.Framing == b.Head.Framing && a.Head.ContentLength == b.Head.ContentLength && a.Head.KeepAlive == b.Head.KeepAlive
            && a.Head.Headers.SequenceEqual(b.Head.Headers)));

    private static string Describe(ResponseHeadParseResult r) => r.Status switch
    {
        ResponseHeadParseStatus.Complete => $"Complete({r.Head!.StatusCode}, {r.Head.Framing}, length {r.Head.HeadLength})",
        ResponseHeadParseStatus.Invalid => $"Invalid({r.Error})",
        _ => "Incomplete",
    };
}
