using ZcProxy.Core.Compression;

namespace ZcProxy.Tests.Compression;

public class ContentCodingsTests
{
    [Theory]
    [InlineData(null, "None")]
    [InlineData("", "None")]
    [InlineData("identity", "None")]
    [InlineData("deflate", "None")]
    [InlineData("gzip", "Gzip")]
    [InlineData("x-gzip", "Gzip")]
    [InlineData("GZIP, deflate", "Gzip")]
    [InlineData("br", "Brotli")]
    [InlineData("gzip, deflate, br, zstd", "Brotli")]   // equal q: brotli, the smaller output
    [InlineData("br;q=0.5, gzip", "Gzip")]              // the higher q wins
    [InlineData("br;q=0, gzip;q=0", "None")]            // q=0: not acceptable
    [InlineData("*", "Brotli")]
    [InlineData("*;q=0.1, gzip", "Gzip")]
    [InlineData("*, br;q=0", "Gzip")]                   // * stands for the codings not named
    [InlineData("gzip;q=garbage", "None")]              // unparseable: sent as it is
    public void Choose_FollowsAcceptEncoding(string? header, string expected)
        => Assert.Equal(expected, ContentCodings.Choose(header).ToString());
}
