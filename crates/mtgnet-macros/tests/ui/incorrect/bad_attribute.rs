struct Condition;

#[mtgnet_macros::service(name = "Math", colour = "blue")]
pub trait Math {
    async fn add(&self, a: i64, b: i64) -> Result<i64, Condition>;
}

#[mtgnet_macros::service(version = "one")]
pub trait Other {
    async fn add(&self, a: i64, b: i64) -> Result<i64, Condition>;
}

fn main() {}
