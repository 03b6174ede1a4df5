using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using ZcProxy.Core.Transport.Http1;

namespace ZcProxy.Tests.Transport;

/// <summary>The framing decision's two names are answered from indexes found once per block: as a scan answers them.</summary>
public sealed class Http1FieldBlockTests
{
    [Theory]
    [InlineData("x-a|connection|Transfer-Encoding", 1, 2)]
    [InlineData("TRANSFER-ENCODING|x-b", -1, 0)]
    [InlineData("Server|Content-Length", -1, -1)]
    public void ConnectionAndTransferEncoding_AreFoundAsAnyNameIs(string names, int connection, int transferEncoding)
    {
        var block = new Http1FieldBlock([.. names.Split('|').Select(n => new KeyValuePair<string, StringValues>(n, "v"))]);
        Assert.Equal(connection, block.IndexOf(HeaderNames.Connection));
        Assert.Equal(transferEncoding, block.IndexOf(HeaderNames.TransferEncoding));
        // Other strings with the same names (not HeaderNames' own) take the scan.
        Assert.Equal(connection, block.IndexOf(new string("CONNECTION".AsSpan())));
        Assert.Equal(transferEncoding, block.IndexOf(new string("transfer-encoding".AsSpan())));
    }
}
