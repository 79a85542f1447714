struct Condition;
struct Context;

#[mtgnet_macros::service]
pub trait Text {
    async fn shout(&self, text: &str) -> Result<String, Condition>;
    async fn whisper(&self, text: String, ctx: &Context) -> Result<String, Condition>;
}

fn main() {}
