using System.Text;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Tests.Upstream;

public class ResponseHeadParserTests
{
    private static ResponseHeadParseResult Parse(string text, bool head = false, ResponseHeadLimits? limits = null)
        => ResponseHeadParser.Parse(Encoding.Latin1.GetBytes(text), head, limits);

    private static ResponseHead Complete(string text, bool head = false)
    {
        var result = Parse(text, head);
        Assert.True(result.Status == ResponseHeadParseStatus.Complete, result.Error);
        return result.Head!;
    }

    private static void Invalid(string text, string because)
    {
        var result = Parse(text);
        Assert.Equal(ResponseHeadParseStatus.Invalid, result.Status);
        Assert.Contains(because, result.Error);
    }

    [Fact]
    public void Parse_ContentLength_HeadLengthStopsBeforeBody()
    {
        const string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\n";
        var parsed = Complete(head + "hello");
        Assert.Equal(200, parsed.StatusCode);
        Assert.Equal("OK", parsed.ReasonPhrase);
        Assert.Equal(BodyFraming.ContentLength, parsed.Framing);
        Assert.Equal(5, parsed.ContentLength);
        Assert.True(parsed.KeepAlive);
        Assert.Equal(head.Length, parsed.HeadLength);
        Assert.Contains(new KeyValuePair<string, string>("X-A", "b"), parsed.Headers);
    }

    [Fact]
    public void Parse_ByteByByte_IncompleteUntilTheEmptyLine()
    {
        var bytes = Encoding.ASCII.GetBytes("HTTP/1.1 204 No Content\r\nA: 1\r\n\r\n");
        for (int i = 0; i < bytes.Length; i++)
            Assert.Equal(ResponseHeadParseStatus.Incomplete, ResponseHeadParser.Parse(bytes.AsSpan(0, i), false).Status);
        Assert.Equal(ResponseHeadParseStatus.Complete, ResponseHeadParser.Parse(bytes, false).Status);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Chunked", true)]
    [InlineData("HTTP/1.1 200 OK\r\n\r\n", "CloseDelimited", false)]
    [InlineData("HTTP/1.1 204 No Content\r\n\r\n", "None", true)]
    [InlineData("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "None", true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", "ContentLength", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", "ContentLength", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", "ContentLength", true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n", "ContentLength", true)]
    [InlineData("HTTP/1.1 100 Continue\r\n\r\n", "None", true)]
    [InlineData("HTTP/1.1 599 \r\n\r\n", "CloseDelimited", false)]
    public void Parse_Framing(string text, string framingName, bool keepAlive)
    {
        var framing = Enum.Parse<BodyFraming>(framingName);
        var parsed = Complete(text);
        Assert.Equal(framing, parsed.Framing);
        Assert.Equal(keepAlive, parsed.KeepAlive);
    }

    [Fact]
    public void Parse_HeadRequest_HasNoBodyDespiteContentLength()
    {
        var parsed = Complete("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", head: true);
        Assert.Equal(BodyFraming.None, parsed.Framing);
        Assert.Contains(parsed.Headers, h => h.Key == "Content-Length" && h.Value == "100");
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "conflicting Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "invalid Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "invalid Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "invalid Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported transfer coding")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "unsupported transfer coding")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "unsupported transfer coding")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", "unsupported transfer coding")]
    [InlineData("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", "obsolete line folding")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", "field name")]
    [InlineData("HTTP/1.1 200 OK\r\n: 1\r\n\r\n", "without a field name")]
    [InlineData("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "without a field name")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n", "field value")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", "field value")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 0123456789012345678901234567890123456789\u007F\r\n\r\n", "field value")]
    [InlineData("HTTP/1.1 200 OK\r\nX(A: 1\r\n\r\n", "field name")]
    [InlineData("HTTP/1.1 200 OK\r\nX-Abcdefghijklmnopqrstuvwxyz0123456789@: 1\r\n\r\n", "field name")]
    [InlineData("HTTP/1.1 200 O\u0001K\r\n\r\n", "reason phrase")]
    [InlineData("HTTP/1.1 200 OK\nX-A: 1\r\n\r\n", "bare LF")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\n\n", "bare LF")]
    [InlineData("HTTP/2 200 OK\r\n\r\n", "status line")]
    [InlineData("HTTP/1.2 200 OK\r\n\r\n", "unsupported HTTP version")]
    [InlineData("HTTP/1.1 20 OK\r\n\r\n", "malformed status")]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n", "malformed status line")]
    [InlineData("HTTP/1.1 099 Low\r\n\r\n", "out of range")]
    [InlineData("HTTP/1.1 600 High\r\n\r\n", "out of range")]
    [InlineData("HTTP/1.1 200\r\n\r\n", "status line")]
    [InlineData("http/1.1 200 OK\r\n\r\n", "status line")]
    [InlineData("\r\nHTTP/1.1 200 OK\r\n\r\n", "status line")]
    public void Parse_Malformed_IsRejected(string text, string because) => Invalid(text, because);

    [Fact]
    public void Parse_Garbage_RejectedBeforeAnyLineEnds()
    {
        var result = Parse("SSH-2.0-OpenSSH");
        Assert.Equal(ResponseHeadParseStatus.Invalid, result.Status);
        Assert.Equal(ResponseHeadParseStatus.Incomplete, Parse("HTTP/1").Status);
    }

    [Fact]
    public void Parse_Limits_HeaderCountAndSize()
    {
        var limits = new ResponseHeadLimits { MaxHeaderCount = 3, MaxHeadBytes = 200 };
        var three = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        Assert.Equal(ResponseHeadParseStatus.Complete, Parse(three, limits: limits).Status);
        var four = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        Assert.Contains("too many", Parse(four, limits: limits).Error);

        var big = "HTTP/1.1 200 OK\r\nA: " + new string('x', 300) + "\r\n\r\n";
        Assert.Contains("size limit", Parse(big, limits: limits).Error);
        // An unterminated head is rejected as soon as it passes the limit, not when a terminator arrives.
        Assert.Contains("size limit", Parse("HTTP/1.1 200 OK\r\nA: " + new string('x', 300), limits: limits).Error);
    }

    [Fact]
    public void Parse_AfterAHeadOnTheSameConnection_ReusesItsStringsWhereTheBytesMatch()
    {
        static ResponseHead Read(string text, ResponseHead? previous)
        {
            var result = ResponseHeadParser.Parse(Encoding.Latin1.GetBytes(text), false, null, previous);
            Assert.True(result.Status == ResponseHeadParseStatus.Complete, result.Error);
            return result.Head!;
        }
        var first = Read("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 02 Dec 2026 13:00:00 GMT\r\nX-Mixed: caf\u00e9\r\nContent-Length: 5\r\n\r\n", null);
        var second = Read("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 02 Dec 2026 13:00:01 GMT\r\nX-Mixed: caf\u00e9\r\ncontent-length: 5\r\n\r\n", first);

        Assert.Same(first.ReasonPhrase, second.ReasonPhrase);
        Assert.Same(first.Headers[0].Key, second.Headers[0].Key);
        Assert.Same(first.Headers[0].Value, second.Headers[0].Value);
        Assert.Same(first.Headers[1].Key, second.Headers[1].Key);
        Assert.Equal("Wed, 02 Dec 2026 13:00:01 GMT", second.Headers[1].Value); // changed bytes: a new string
        Assert.Equal(new KeyValuePair<string, string>("X-Mixed", "caf\u00e9"), second.Headers[2]); // obs-text: compared, never mixed up
        Assert.Equal("content-length", second.Headers[3].Key); // case is the upstream's, not the previous head's
        Assert.Equal(5, second.ContentLength);
    }

    [Fact]
    public void Parse_AcceptsEveryTokenCharInNames_AndTabsAndObsTextInValues()
    {
        const string name = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        var head = Complete($"HTTP/1.1 200 Caf\u00e9\tOK\r\n{name}: a\tb \u00ff~\r\nContent-Length: 0\r\n\r\n");
        Assert.Equal("Caf\u00e9\tOK", head.ReasonPhrase);
        Assert.Equal(new KeyValuePair<string, string>(name, "a\tb \u00ff~"), head.Headers[0]);
    }

    [Fact]
    public void Parse_TheSameHeadAgain_IsThePreviousHead_AndTheSameFieldsShareTheirArray()
    {
        var bytes = "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\n\r\n"u8.ToArray();
        var first = ResponseHeadParser.Parse(bytes, false).Head!;
        var again = ResponseHeadParser.Parse(bytes, false, null, first).Head!;
        Assert.Same(first, again); // heads are immutable: nothing allocated for a repeated one

        var toHead = ResponseHeadParser.Parse(bytes, requestWasHead: true, null, first).Head!;
        Assert.NotSame(first, toHead);
        Assert.Equal(BodyFraming.None, toHead.Framing);
        Assert.Same(first.Headers, toHead.Headers);

        var otherStatus = ResponseHeadParser.Parse("HTTP/1.1 201 OK\r\nServer: nginx\r\nContent-Length: 5\r\n\r\n"u8, false, null, first).Head!;
        Assert.Equal(201, otherStatus.StatusCode);
        Assert.Same(first.Headers, otherStatus.Headers);

        var otherValue = ResponseHeadParser.Parse("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 6\r\n\r\n"u8, false, null, first).Head!;
        Assert.NotSame(first.Headers, otherValue.Headers);
        Assert.Equal(6, otherValue.ContentLength);
        Assert.Equal("5", first.Headers[1].Value); // the previous head is untouched
    }

    [Fact]
    public void Parse_AfterALongerHead_HasOnlyItsOwnFields()
    {
        var longer = Complete("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\n\r\n");
        var result = ResponseHeadParser.Parse("HTTP/1.1 404 Not Found\r\nA: 1\r\n\r\n"u8, false, null, longer);
        Assert.Equal(ResponseHeadParseStatus.Complete, result.Status);
        Assert.Equal("Not Found", result.Head!.ReasonPhrase);
        Assert.Equal([new KeyValuePair<string, string>("A", "1")], result.Head.Headers);
    }
}
