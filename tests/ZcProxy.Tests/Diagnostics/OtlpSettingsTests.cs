using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>Telemetry.Otlp settings compared across a reload: only a real change asks for a restart.</summary>
public class OtlpSettingsTests
{
    [Fact]
    public void SameSettings_ComparesHeadersByContent_SoAnUnchangedReloadWarnsOfNothing()
    {
        var a = new OtlpOptions { Headers = new Dictionary<string, string> { ["A"] = "1" } };
        Assert.True(OtlpExport.SameSettings(a, a with { Headers = new Dictionary<string, string> { ["A"] = "1" } }));
        Assert.False(OtlpExport.SameSettings(a, a with { Headers = new Dictionary<string, string> { ["A"] = "2" } }));
        Assert.False(OtlpExport.SameSettings(a, a with { SampleRatio = 0.5 }));
        Assert.False(OtlpExport.SameSettings(a, null));
        Assert.True(OtlpExport.SameSettings(null, null));
    }
}
